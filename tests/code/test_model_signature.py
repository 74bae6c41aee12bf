"""OpenSSF model signatures: a registered version's model directory verifies with `model_signing verify key`,
and stops verifying when one byte of its weights changes or another key is named."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import mlflow
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipelines.adapters import registry
from pipelines.adapters.settings import Settings, load_settings
from pipelines.audit import model_signature
from tests.conftest import TINY_ARCHITECTURE
from unlearning.models import build_model

CLI = Path(sys.executable).parent / "model_signing"


def model_signing_verify(model_dir: Path, public_key: Path) -> subprocess.CompletedProcess:
    """The ecosystem's own check, as an auditor runs it on a downloaded version."""
    return subprocess.run(
        [str(CLI), "verify", "key", "--signature", str(model_dir / "model.sig"), "--public_key", str(public_key),
         str(model_dir)],
        capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.fixture(scope="module")
def signed_version(tmp_path_factory) -> tuple[Settings, str, str, Path]:
    """A tiny model registered by the project's registry code, signed, then downloaded as a user would."""
    settings = load_settings()
    name = f"signed-{uuid.uuid4().hex[:8]}"
    run = registry.client(settings).create_run(registry.ensure_experiment(settings, "erasure-training"))
    model = build_model("restorer-unet", TINY_ARCHITECTURE)
    version, _ = registry.log_and_register(settings, run.info.run_id, name, model, "restorer-unet", tags={})
    model_signature.sign_version(settings, name, version)
    downloaded = tmp_path_factory.mktemp("download")
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=str(downloaded)))
    return settings, name, version, local


@pytest.fixture
def model_copy(signed_version, tmp_path) -> Path:
    return Path(shutil.copytree(signed_version[3], tmp_path / "model"))


@pytest.fixture
def home(tmp_path, monkeypatch) -> Settings:
    monkeypatch.delenv(model_signature.KEY_ENV, raising=False)
    return Settings(home=tmp_path)


def test_generated_key_is_p256_reused_private_and_published(home):
    first, second = model_signature.load_model_signing_key(home), model_signature.load_model_signing_key(home)
    assert first.source == "generated" and first.fingerprint == second.fingerprint
    assert isinstance(first.private_key.curve, ec.SECP256R1)
    assert model_signature.generated_key_path(home).stat().st_mode & 0o077 == 0
    assert model_signature.public_key_path(home).read_bytes() == first.public_pem


def test_an_ed25519_key_is_refused_by_name(home, tmp_path, monkeypatch):
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    monkeypatch.setenv(model_signature.KEY_ENV, pem.decode())
    with pytest.raises(model_signature.ModelSigningKeyError, match="ERASURE_MODEL_SIGNING_KEY: expected an EC key"):
        model_signature.load_model_signing_key(home)


def test_registered_version_verifies_with_the_model_signing_cli(signed_version):
    settings, _, _, local = signed_version
    result = model_signing_verify(local, model_signature.public_key_path(settings))
    assert result.returncode == 0, result.stderr
    assert "Verification succeeded" in result.stdout + result.stderr


def test_one_changed_byte_of_the_weights_fails_the_cli_naming_the_file(signed_version, model_copy):
    weights = model_copy / "artifacts" / registry.WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    result = model_signing_verify(model_copy, model_signature.public_key_path(signed_version[0]))
    assert result.returncode != 0
    # The quoting around the name varies with the digests' bytes (Python reprs inside the message).
    changed = re.escape(f"artifacts/{registry.WEIGHTS_FILE}")
    assert re.search(rf"Hash mismatch for \W*{changed}", result.stderr), result.stderr


def test_another_public_key_fails_the_cli(model_copy, tmp_path):
    other = tmp_path / "other.pub.pem"
    other.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    result = model_signing_verify(model_copy, other)
    assert result.returncode != 0
    assert "Key mismatch" in result.stderr


def test_verify_model_dir_names_an_added_file(signed_version, model_copy):
    public_key = model_signature.public_key_path(signed_version[0])
    model_signature.verify_model_dir(model_copy, public_key)
    (model_copy / "artifacts" / "extra.bin").write_bytes(b"x")
    with pytest.raises(model_signature.ModelSignatureError, match="Extra files.*extra.bin"):
        model_signature.verify_model_dir(model_copy, public_key)


def test_version_tag_records_the_signature_digest_and_key(signed_version):
    settings, name, version, local = signed_version
    tags = registry.client(settings).get_model_version(name, version).tags
    tag = json.loads(tags[model_signature.TAG_MODEL_SIGNATURE])
    assert tag["sha256"] == hashlib.sha256((local / "model.sig").read_bytes()).hexdigest()
    assert tag["key_fingerprint"] == model_signature.load_model_signing_key(settings).fingerprint
