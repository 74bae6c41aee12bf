"""The audit record's schema, its export under docs/, and Ed25519 attestations (no stores needed)."""

import json

import pytest
from pydantic import ValidationError

from pipelines.adapters.settings import PROJECT_ROOT, Settings
from pipelines.audit import signing
from pipelines.audit.record import AuditRecord, canonical_bytes, json_schema_text


def test_exported_json_schema_is_up_to_date():
    exported = PROJECT_ROOT / "docs" / "audit-record.schema.json"
    assert exported.read_text() == json_schema_text(), "run `erasure audit schema` and commit the result"


def test_refused_record_must_name_its_stage_and_error():
    with pytest.raises(ValidationError, match="failed_stage and error"):
        AuditRecord.model_validate({"request_id": "req-x", "status": "failed"})


def test_passed_record_must_be_promoted():
    with pytest.raises(ValidationError, match="promoted"):
        AuditRecord.model_validate({"request_id": "req-x", "status": "passed"})


def test_canonical_bytes_round_trip():
    record = AuditRecord(request_id="req-x", status="rejected", failed_stage="verify", error="thresholds")
    assert canonical_bytes(AuditRecord.model_validate_json(canonical_bytes(record))) == canonical_bytes(record)


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.delenv(signing.KEY_ENV, raising=False)
    return Settings(home=tmp_path)


def _attestation(key):
    return signing.attest(key, request_id="r", model="m", version="2", weights_sha256="a" * 64,
                          onnx_sha256="b" * 64, audit_record_sha256="c" * 64, chain_sequence=0)


def test_generated_key_is_reused_and_private(settings):
    first, second = signing.load_signing_key(settings), signing.load_signing_key(settings)
    assert first.source == "generated" and first.fingerprint == second.fingerprint
    assert signing.generated_key_path(settings).stat().st_mode & 0o077 == 0


def test_attestation_verifies_under_its_key_and_not_after_an_edit(settings):
    key = signing.load_signing_key(settings)
    document = _attestation(key)
    trusted = signing.trusted_keys(settings)
    assert signing.check_attestation(document, trusted)["audit_record_sha256"] == "c" * 64
    document["statement"]["version"] = "3"
    with pytest.raises(signing.AttestationError, match="does not verify"):
        signing.check_attestation(document, trusted)


def test_key_from_env_file_wins_and_other_keys_are_untrusted(settings, tmp_path, monkeypatch):
    from cryptography.hazmat.primitives import serialization

    generated = signing.load_signing_key(settings)
    pem = signing.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "ops.pem").write_bytes(pem)
    monkeypatch.setenv(signing.KEY_ENV, str(tmp_path / "ops.pem"))
    configured = signing.load_signing_key(settings)
    assert configured.source == "file" and configured.fingerprint != generated.fingerprint
    with pytest.raises(signing.AttestationError, match="not a trusted key"):
        signing.check_attestation(_attestation(generated), signing.trusted_keys(settings))


def test_bad_key_env_names_the_variable(settings, monkeypatch):
    monkeypatch.setenv(signing.KEY_ENV, "/no/such/key.pem")
    with pytest.raises(signing.SigningKeyError, match="ERASURE_SIGNING_KEY"):
        signing.load_signing_key(settings)


def test_statement_bytes_are_compact_sorted_json():
    assert signing.statement_bytes({"b": 1, "a": "é"}) == json.dumps({"a": "é", "b": 1}, separators=(",", ":"), ensure_ascii=False).encode()
