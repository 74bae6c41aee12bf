"""Ed25519 attestations: a promoted model's weights, ONNX, audit record and request, bound by one signature.

The key comes from ERASURE_SIGNING_KEY (PEM text, or a path to a PEM file); without it the embedded mode
generates a local key under ERASURE_HOME/keys once and says so (`key_source: generated`) in every record.
The signed bytes are the statement as compact, sorted JSON, so anyone can re-create and check them
with the public key alone (docs/audit.md shows openssl and python one-liners).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pipelines.adapters.settings import Settings
from pipelines.audit.record import SigningInfo, now

KEY_ENV = "ERASURE_SIGNING_KEY"
STATEMENT_TYPE = "erasure.attestation/v1"
ATTESTATION_ARTIFACT = "audit/attestation.json"


class SigningKeyError(ValueError):
    """The configured signing key cannot be read or is not an Ed25519 private key."""


class AttestationError(ValueError):
    """An attestation is malformed, its signature does not verify, or its key is not trusted."""


@dataclass(frozen=True)
class SigningKey:
    private_key: Ed25519PrivateKey
    source: str  # env | file | generated
    location: str  # where it was read from (never the key itself)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def info(self) -> SigningInfo:
        return SigningInfo(key_fingerprint=self.fingerprint, key_source=self.source)


def generated_key_path(settings: Settings) -> Path:
    return settings.home / "keys" / "attestation-ed25519.pem"


def public_key_path(settings: Settings) -> Path:
    """Where the public half of the configured key is published for auditors."""
    return settings.home / "keys" / "attestation-ed25519.pub.pem"


def raw_public_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public_key: Ed25519PublicKey) -> str:
    return "sha256:" + hashlib.sha256(raw_public_bytes(public_key)).hexdigest()


def _private_from_pem(pem: bytes, where: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise SigningKeyError(f"{where}: not an unencrypted PEM private key ({error})") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{where}: expected an Ed25519 key, got {type(key).__name__}")
    return key


@dataclass(frozen=True)
class KeyMaterial:
    pem: bytes
    where: str  # what to name in an error about the key
    source: str  # env | file | generated
    location: str


def key_material(env_var: str, generated: Path, new_pem: Callable[[], bytes], error: type[Exception],
                 create: bool = True) -> KeyMaterial | None:
    """A private key's PEM: from `env_var` (PEM text, or a path), else the file `generated`, made with `new_pem`
    on first use (mode 0600) when `create`. Shared by the attestation key and the model-signing key."""
    configured = os.environ.get(env_var, "").strip()
    if configured.startswith("-----BEGIN"):
        return KeyMaterial(configured.encode(), env_var, "env", env_var)
    if configured:
        path = Path(configured).expanduser()
        try:
            return KeyMaterial(path.read_bytes(), f"{env_var}={path}", "file", str(path))
        except OSError as problem:
            raise error(f"{env_var}: cannot read key file {path}: {problem.strerror}") from problem
    if not generated.exists():
        if not create:
            return None
        generated.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two flows starting at once must not each write a different key.
        try:
            descriptor = os.open(generated, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(new_pem())
        except FileExistsError:
            pass
    return KeyMaterial(generated.read_bytes(), str(generated), "generated", str(generated))


def load_signing_key(settings: Settings, create: bool = True) -> SigningKey | None:
    """The configured key (env PEM, env path), else the generated local key, created when `create`."""
    def new_pem() -> bytes:
        return Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    material = key_material(KEY_ENV, generated_key_path(settings), new_pem, SigningKeyError, create)
    if material is None:
        return None
    key = SigningKey(_private_from_pem(material.pem, material.where), material.source, material.location)
    publish_public_key(settings, key)
    return key


def publish_public_key(settings: Settings, key: SigningKey) -> Path:
    path = public_key_path(settings)
    pem = key.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    if not path.exists() or path.read_bytes() != pem:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pem)
    return path


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as error:
        raise SigningKeyError(f"public key {path}: cannot read an Ed25519 PEM public key ({error})") from error
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"public key {path}: expected Ed25519, got {type(key).__name__}")
    return key


def statement_bytes(statement: dict[str, Any]) -> bytes:
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def attest(
    key: SigningKey,
    *,
    request_id: str,
    model: str,
    version: str,
    weights_sha256: str,
    onnx_sha256: str | None,
    audit_record_sha256: str,
    chain_sequence: int,
) -> dict[str, Any]:
    """A signed attestation document (statement + detached Ed25519 signature over its canonical bytes)."""
    statement = {
        "_type": STATEMENT_TYPE,
        "request_id": request_id,
        "model": model,
        "version": version,
        "weights_sha256": weights_sha256,
        "onnx_sha256": onnx_sha256,
        "audit_record_sha256": audit_record_sha256,
        "chain_sequence": chain_sequence,
        "signed_at": now(),
    }
    signature = key.private_key.sign(statement_bytes(statement))
    return {
        "statement": statement,
        "signature": {
            "algorithm": "ed25519",
            "key_fingerprint": key.fingerprint,
            "public_key": base64.b64encode(raw_public_bytes(key.public_key)).decode(),
            "value": base64.b64encode(signature).decode(),
        },
    }


def verify_signed(body: dict[str, Any], signature: dict[str, Any], expected_type: str, trusted: dict[str, Ed25519PublicKey],
                  error: type[Exception], names: dict[str, str]) -> dict[str, Any]:
    """`body` if its `_type` is `expected_type` and `signature` (key fingerprint + base64 Ed25519 over
    `statement_bytes(body)`) verifies under a trusted key; raises `error` otherwise. `names` says what the
    messages call the document, its body, its key and its signature."""
    try:
        claimed = signature["key_fingerprint"]
        value = base64.b64decode(signature["value"], validate=True)
    except (KeyError, TypeError, ValueError) as problem:
        raise error(f"{names['document']} is malformed: {type(problem).__name__}: {problem}") from problem
    if body.get("_type") != expected_type:
        raise error(f"{names['body']} _type is {body.get('_type')!r}, expected {expected_type!r}")
    public_key = trusted.get(claimed)
    if public_key is None:
        raise error(f"{names['key']} {claimed} is not a trusted key (trusted: {sorted(trusted)})")
    try:
        public_key.verify(value, statement_bytes(body))
    except InvalidSignature as problem:
        raise error(f"{names['signature']} does not verify under key {claimed}: forged or altered") from problem
    return body


def check_attestation(document: dict[str, Any], trusted: dict[str, Ed25519PublicKey]) -> dict[str, Any]:
    """The statement of a valid attestation signed by a trusted key; raises AttestationError otherwise."""
    try:
        statement, signature = document["statement"], document["signature"]
    except (KeyError, TypeError) as error:
        raise AttestationError(f"attestation is malformed: {type(error).__name__}: {error}") from error
    names = {"document": "attestation", "body": "attestation statement", "key": "signature.key_fingerprint",
             "signature": "signature.value"}
    return verify_signed(statement, signature, STATEMENT_TYPE, trusted, AttestationError, names)


def trusted_keys(settings: Settings, extra_public_keys: list[Path] = ()) -> dict[str, Ed25519PublicKey]:
    """Keys whose signatures `verify` accepts: the configured/generated key and any given public keys."""
    keys = {}
    own = load_signing_key(settings, create=False)
    if own is not None:
        keys[own.fingerprint] = own.public_key
    elif public_key_path(settings).exists():
        public = load_public_key(public_key_path(settings))
        keys[fingerprint(public)] = public
    for path in extra_public_keys:
        public = load_public_key(path)
        keys[fingerprint(public)] = public
    return keys


# in-toto Statement v1 in a DSSE envelope: the same facts as the attestation above, in the format standard
# supply-chain tooling (in-toto, sigstore/cosign verify-blob-attestation, witness) parses.
DSSE_ARTIFACT = "audit/attestation.dsse.json"
DSSE_PAYLOAD_TYPE = "application/vnd.in-toto+json"
INTOTO_STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "urn:erasure:predicate:unlearning:v1"  # ours: docs/audit.md describes the predicate


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: the bytes the signature is over."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def intoto_statement(statement: dict[str, Any]) -> dict[str, Any]:
    """The in-toto Statement v1 for an attestation statement: subjects are the weights and ONNX files."""
    prefix = f"{statement['model']}/{statement['version']}"
    subject = [{"name": f"{prefix}/weights.safetensors", "digest": {"sha256": statement["weights_sha256"]}}]
    if statement.get("onnx_sha256"):
        subject.append({"name": f"{prefix}/model.onnx", "digest": {"sha256": statement["onnx_sha256"]}})
    predicate = {key: statement[key] for key in ("request_id", "model", "version", "audit_record_sha256", "chain_sequence", "signed_at")}
    return {"_type": INTOTO_STATEMENT_TYPE, "subject": subject, "predicateType": PREDICATE_TYPE, "predicate": predicate}


def dsse_envelope(key: SigningKey, statement: dict[str, Any]) -> dict[str, Any]:
    payload = statement_bytes(intoto_statement(statement))
    signature = key.private_key.sign(pae(DSSE_PAYLOAD_TYPE, payload))
    return {
        "payloadType": DSSE_PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": key.fingerprint, "sig": base64.b64encode(signature).decode()}],
    }


def check_dsse(envelope: dict[str, Any], trusted: dict[str, Ed25519PublicKey]) -> dict[str, Any]:
    """The in-toto statement of a DSSE envelope signed by a trusted key; raises AttestationError otherwise."""
    try:
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = [(s["keyid"], base64.b64decode(s["sig"], validate=True)) for s in envelope["signatures"]]
        statement = json.loads(payload)
    except (KeyError, TypeError, ValueError) as error:
        raise AttestationError(f"DSSE envelope is malformed: {type(error).__name__}: {error}") from error
    if envelope.get("payloadType") != DSSE_PAYLOAD_TYPE or statement.get("_type") != INTOTO_STATEMENT_TYPE:
        raise AttestationError(f"DSSE envelope is not an in-toto Statement v1 ({envelope.get('payloadType')!r})")
    for keyid, signature in signatures:
        if keyid in trusted:
            try:
                trusted[keyid].verify(signature, pae(DSSE_PAYLOAD_TYPE, payload))
            except InvalidSignature as error:
                raise AttestationError(f"DSSE signature does not verify under key {keyid}: forged or altered") from error
            return statement
    raise AttestationError(f"DSSE envelope has no signature by a trusted key (keyids {[k for k, _ in signatures]})")
