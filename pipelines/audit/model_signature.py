"""OpenSSF model signatures: each registered version's MLflow model directory signed with `model-signing`.

Beside the Ed25519 attestation (pipelines/audit/signing.py), which binds hashes in Erasure's own format, a
version's model directory carries `model.sig`: a Sigstore bundle over the sha256 of every file in it, signed
with an EC P-256 key, that the ecosystem's own tool checks on the downloaded directory:

    mlflow artifacts download -u models:/NAME/VERSION -d model
    model_signing verify key --signature model/model.sig --public_key PUBLIC_KEY_PEM model

The key comes from ERASURE_MODEL_SIGNING_KEY (PEM text, or a path to a PEM file); without it a local key is
generated once under ERASURE_HOME/keys (mode 0600). Its public half is published beside it for auditors.
model-signing's key mode takes elliptic-curve keys only, so this is a second key, not the Ed25519 one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pipelines.adapters.settings import Settings
from pipelines.audit.signing import key_material

KEY_ENV = "ERASURE_MODEL_SIGNING_KEY"
SIGNATURE_FILE = "model.sig"
# MLflow writes `registered_model_meta` (name, version) into every `models:/` download, after signing; the
# ignore list is itself signed into the manifest, so the verifier skips the same files without being told.
IGNORED_PATHS = (SIGNATURE_FILE, "registered_model_meta")
TAG_MODEL_SIGNATURE = "erasure.model_signature"
CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)  # the curves model-signing's key mode accepts


class ModelSigningKeyError(ValueError):
    """The configured model-signing key cannot be read or is not an EC key on a curve model-signing takes."""


class ModelSignatureError(ValueError):
    """A model directory's OpenSSF signature is missing, malformed, by another key, or its files changed."""


@dataclass(frozen=True)
class ModelSigningKey:
    private_key: ec.EllipticCurvePrivateKey
    source: str  # env | file | generated
    location: str  # where it was read from (never the key itself)

    @property
    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def fingerprint(self) -> str:
        """'sha256:' + the hex that model-signing writes as the bundle's `verificationMaterial.publicKey.hint`."""
        return "sha256:" + hashlib.sha256(self.public_pem).hexdigest()


@dataclass(frozen=True)
class ModelSignature:
    """Where a signature was written and what identifies it: the content of the version tag."""

    path: Path
    sha256: str
    key_fingerprint: str

    def as_tag(self) -> str:
        return json.dumps({"file": SIGNATURE_FILE, "sha256": self.sha256, "key_fingerprint": self.key_fingerprint,
                           "format": "openssf-model-signing/v1.0"}, sort_keys=True, separators=(",", ":"))


def generated_key_path(settings: Settings) -> Path:
    return settings.home / "keys" / "model-signing-p256.pem"


def public_key_path(settings: Settings) -> Path:
    """Where the public half of the configured key is published for auditors (`--public_key` of the CLI)."""
    return settings.home / "keys" / "model-signing-p256.pub.pem"


def _private_from_pem(pem: bytes, where: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise ModelSigningKeyError(f"{where}: not an unencrypted PEM private key ({error})") from error
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, CURVES):
        got = getattr(getattr(key, "curve", None), "name", None) or type(key).__name__
        raise ModelSigningKeyError(f"{where}: expected an EC key on P-256, P-384 or P-521, got {got}")
    return key


def load_model_signing_key(settings: Settings) -> ModelSigningKey:
    """The configured key (env PEM, env path), else the generated local P-256 key, created on first use."""
    def new_pem() -> bytes:
        return ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    material = key_material(KEY_ENV, generated_key_path(settings), new_pem, ModelSigningKeyError)
    key = ModelSigningKey(_private_from_pem(material.pem, material.where), material.source, material.location)
    published = public_key_path(settings)
    if not published.exists() or published.read_bytes() != key.public_pem:
        published.parent.mkdir(parents=True, exist_ok=True)
        published.write_bytes(key.public_pem)
    return key


@contextmanager
def _key_file(key: ModelSigningKey) -> Iterator[Path]:
    """A PEM file holding `key`: model-signing reads its key from a path, and an env key has none."""
    if key.source != "env":
        yield Path(key.location)
        return
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "key.pem"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(key.private_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        yield path


def sign_model_dir(settings: Settings, model_dir: Path) -> ModelSignature:
    """Sign every file of `model_dir` (except IGNORED_PATHS) into `model_dir/model.sig`, replacing any old one."""
    from model_signing import hashing, signing  # ~0.4 s to import: only when a model is signed

    model_dir = Path(model_dir)
    key = load_model_signing_key(settings)
    signature = model_dir / SIGNATURE_FILE
    # The signature lives inside the directory it signs: without ignoring it, re-signing would hash the old one.
    hashing_config = hashing.Config().set_ignored_paths(paths=list(IGNORED_PATHS), ignore_git_paths=True)
    with _key_file(key) as key_path:
        signing.Config().use_elliptic_key_signer(private_key=key_path).set_hashing_config(hashing_config).sign(
            model_dir, signature)
    return ModelSignature(signature, hashlib.sha256(signature.read_bytes()).hexdigest(), key.fingerprint)


def verify_model_dir(model_dir: Path, public_key: Path, signature: Path | None = None) -> None:
    """Return if `signature` (default `model_dir/model.sig`) is `public_key`'s signature over exactly the files
    of `model_dir`; raise ModelSignatureError naming what differs otherwise. The same check as the CLI's
    `model_signing verify key`."""
    from cryptography.exceptions import InvalidSignature
    from model_signing import verifying

    model_dir = Path(model_dir)
    signature = Path(signature) if signature else model_dir / SIGNATURE_FILE
    try:
        verifying.Config().use_elliptic_key_verifier(public_key=Path(public_key)).verify(model_dir, signature)
    except InvalidSignature as error:  # carries no message
        raise ModelSignatureError(f"{signature}: signature does not verify: forged or altered") from error
    except (ValueError, OSError, TypeError) as error:
        raise ModelSignatureError(f"{signature}: {error}") from error


def sign_version(settings: Settings, name: str, version: str) -> ModelSignature:
    """Sign the model directory of version `version` of `name` as stored, add `model.sig` to it, and tag the
    version `erasure.model_signature` (signature sha256, key fingerprint). Safe to repeat."""
    import mlflow
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    from pipelines.adapters.registry import client

    mlflow_client = client(settings)
    with tempfile.TemporaryDirectory() as scratch:
        # What is signed is what a `models:/` download returns, byte for byte, and the signature goes back to
        # the very location that download reads from.
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=scratch))
        signed = sign_model_dir(settings, local)
        location = mlflow_client.get_model_version_download_uri(name, version)
        get_artifact_repository(location).log_artifact(str(signed.path))
    mlflow_client.set_model_version_tag(name, version, TAG_MODEL_SIGNATURE, signed.as_tag())
    return signed
