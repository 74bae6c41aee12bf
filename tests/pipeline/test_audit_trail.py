"""The audit trail on a real store: three requests through the real flow, then the tamper catalogue.

The module runs in its own ERASURE_HOME and MLflow store, so tampering never touches the records other
modules read. Each tamper is undone when its test ends (`tampered` restores the bytes it changed).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from pipelines.adapters import registry
from pipelines.adapters.settings import load_settings
from pipelines.audit import chain as chain_module
from pipelines.audit.record import AuditRecord, hashed_file_id
from pipelines.audit.store import RECORD_ARTIFACT, read_record
from pipelines.cli import app
from pipelines.flow.base_model import register_base_model
from tests.pipeline.test_deletion_flow import request_file, run_flow

pytestmark = [pytest.mark.e2e]

MODEL = "tiny-restorer"
FORGET_PATH = "data/restoration/train/haze.safetensors"
ISOLATED = ("ERASURE_HOME", "MLFLOW_TRACKING_URI", "ERASURE_DATA_REPO")


@dataclass
class Trail:
    home: Path
    outcomes: dict[str, dict]

    def run_dir(self, request_id: str) -> Path:
        """The MLflow run's artifact directory (embedded mode: a plain directory)."""
        run_id = self.outcomes[request_id]["mlflow_run_id"]
        uri = MlflowClient().get_run(run_id).info.artifact_uri
        return Path(unquote(urlparse(uri).path))

    @property
    def ledger(self) -> Path:
        return self.home / "ledger" / f"{MODEL}.jsonl"


@pytest.fixture(scope="module")
def trail(tiny_world, data_repo, tmp_path_factory) -> Iterator[Trail]:
    saved = {key: os.environ.get(key) for key in ISOLATED}
    home = tmp_path_factory.mktemp("audit-home")
    os.environ.update(
        ERASURE_HOME=str(home), MLFLOW_TRACKING_URI=f"sqlite:///{home / 'mlflow.db'}", ERASURE_DATA_REPO=str(data_repo)
    )
    model_dir = tmp_path_factory.mktemp("audit-base-model")
    registry.write_model_files(tiny_world.model, "restorer-unet", model_dir)
    (model_dir / "metrics.json").write_text("{}")
    register_base_model(load_settings(), model_dir, MODEL, "champion")
    requests = tmp_path_factory.mktemp("audit-requests")
    outcomes = {
        "req-a1": run_flow(request_file(requests, "req-a1")),
        "req-a2": run_flow(
            request_file(requests, "req-a2", thresholds={"forget_max_gain_db": -5.0, "retain_max_drop_db": 0.3})
        ),
        "req-a3": run_flow(request_file(requests, "req-a3", privacy={"hash_file_names": True})),
    }
    assert [o["status"] for o in outcomes.values()] == ["passed", "rejected", "passed"], outcomes
    yield Trail(home, outcomes)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@contextmanager
def tampered(*paths: Path) -> Iterator[None]:
    """Lets the test change or delete `paths`; puts the original bytes back afterwards."""
    originals = {path: path.read_bytes() for path in paths}
    try:
        yield
    finally:
        for path, content in originals.items():
            path.write_bytes(content)


def verify(*extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["audit", "verify", "--model", MODEL, *extra])
    return result.exit_code, result.output


def first_broken(output: str) -> str:
    return next(line for line in output.splitlines() if "first broken" in line)


def test_untouched_trail_verifies(trail):
    code, output = verify()
    assert code == 0, output
    assert "VERIFIED" in output and "3 records, 2 attestations" in output


def test_records_are_chained_per_model_and_the_head_is_mirrored(trail):
    entries = chain_module.read_ledger(trail.ledger)
    assert [e.request_id for e in entries] == ["req-a1", "req-a2", "req-a3"]
    records = [read_record(load_settings(), rid) for rid in ("req-a1", "req-a2", "req-a3")]
    assert records[0].chain.previous_record_sha256 is None
    for entry, record, previous in zip(entries[1:], records[1:], entries):
        assert record.chain.previous_record_sha256 == previous.record_sha256 == entry.previous_record_sha256
    registered = MlflowClient().get_registered_model(MODEL)
    assert registered.tags[chain_module.TAG_CHAIN_HEAD] == entries[-1].record_sha256
    assert registered.tags[chain_module.TAG_CHAIN_LENGTH] == "3"
    version = MlflowClient().get_model_version(MODEL, trail.outcomes["req-a3"]["version_after"])
    assert version.tags[chain_module.TAG_RECORD_SHA] == entries[-1].record_sha256


def test_record_states_signing_key_evidence_and_uncertainty(trail):
    record = read_record(load_settings(), "req-a1")
    assert record.signing.key_source == "generated" and record.signing.key_fingerprint.startswith("sha256:")
    assert (trail.home / "keys" / "attestation-ed25519.pem").stat().st_mode & 0o077 == 0
    gain = next(m for m in record.metrics if m.name == "forget.haze.psnr_gain_over_input_db")
    assert gain.examples == 32 and 0 < gain.stderr < 5
    assert record.evidence.metrics_used and record.evidence.seeds == {"method": 0}


def test_hashed_file_names_hide_the_forget_path(trail):
    document = (trail.run_dir("req-a3") / RECORD_ARTIFACT).read_text()
    assert FORGET_PATH not in document
    assert json.loads(document)["forget_data"]["path"] == hashed_file_id(FORGET_PATH)
    assert FORGET_PATH in (trail.run_dir("req-a1") / RECORD_ARTIFACT).read_text()  # the flag is per request


def _mutate(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return [*value, "x"]
    if isinstance(value, dict):
        return {**value, "tampered": 1}
    return "x"


@pytest.mark.parametrize("field", sorted(AuditRecord.model_fields))
def test_editing_any_field_of_a_stored_record_is_caught_and_named(trail, field):
    stored = trail.run_dir("req-a2") / RECORD_ARTIFACT
    with tampered(stored):
        document = json.loads(stored.read_text())
        document[field] = _mutate(document[field])
        stored.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        code, output = verify()
    assert code == 1
    assert "record #1 (request req-a2): record edited" in first_broken(output) and field in first_broken(output)


def test_editing_the_local_copy_is_caught(trail):
    local = trail.home / "audit" / "req-a1.json"
    with tampered(local):
        local.write_text(local.read_text().replace('"status": "passed"', '"status": "rejected"'))
        code, output = verify()
    assert code == 1 and "req-a1): local copy edited" in output and "status" in output


def test_deleting_a_record_is_caught_and_named(trail):
    stored = trail.run_dir("req-a2") / RECORD_ARTIFACT
    with tampered(stored):
        stored.unlink()
        code, output = verify()
    assert code == 1 and "record #1 (request req-a2): record missing" in first_broken(output)


def test_deleting_a_record_and_its_ledger_line_breaks_the_next_link(trail):
    lines = trail.ledger.read_text().splitlines(keepends=True)
    stored = trail.run_dir("req-a2") / RECORD_ARTIFACT
    with tampered(trail.ledger, stored):
        trail.ledger.write_text(lines[0] + lines[2])
        stored.unlink()
        code, output = verify()
    assert code == 1 and "record #1 (request req-a3)" in first_broken(output)
    assert "chain link" in output and "req-a2): record not in ledger" in output


def test_removing_the_newest_record_is_caught_by_the_registry_head(trail):
    lines = trail.ledger.read_text().splitlines(keepends=True)
    with tampered(trail.ledger):
        trail.ledger.write_text("".join(lines[:2]))
        code, output = verify()
    assert code == 1 and "chain head" in output and "req-a3): record not in ledger" in output


def test_reordering_two_records_is_caught_and_named(trail):
    lines = trail.ledger.read_text().splitlines(keepends=True)
    with tampered(trail.ledger):
        trail.ledger.write_text(lines[0] + lines[2] + lines[1])
        code, output = verify()
    assert code == 1 and "record #1 (request req-a3): ledger order" in first_broken(output)


def test_swapping_a_versions_weights_is_caught_and_named(trail):
    by_hash = {registry.sha256_file(p): p for p in trail.home.rglob(registry.WEIGHTS_FILE)}
    client = MlflowClient()
    newest = client.get_model_version(MODEL, trail.outcomes["req-a3"]["version_after"])
    older = client.get_model_version(MODEL, trail.outcomes["req-a1"]["version_after"])
    target = by_hash[newest.tags[registry.TAG_WEIGHTS]]
    with tampered(target):
        shutil.copyfile(by_hash[older.tags[registry.TAG_WEIGHTS]], target)
        code, output = verify()
    assert code == 1 and "(request req-a3): weights swapped" in first_broken(output)


def test_a_changed_file_of_a_signed_version_fails_its_model_signature(trail):
    # MLmodel is no weights file: only the OpenSSF signature over every file of the version catches it.
    newest = trail.outcomes["req-a3"]["version_after"]
    logged_model = MlflowClient().get_model_version(MODEL, newest).source.rsplit("/", 1)[-1]  # models:/m-...
    model_dir = next(path.parent for path in trail.home.rglob("MLmodel") if path.parent.parent.name == logged_model)
    assert (model_dir / "model.sig").is_file()
    with tampered(model_dir / "MLmodel"):
        (model_dir / "MLmodel").write_text((model_dir / "MLmodel").read_text() + "\n# edited\n")
        code, output = verify()
    assert code == 1 and "model signature" in output and "MLmodel" in output, output


def test_swapping_the_onnx_file_is_caught_and_named(trail):
    onnx = trail.run_dir("req-a3") / "onnx" / "model.onnx"
    with tampered(onnx):
        shutil.copyfile(trail.run_dir("req-a1") / "onnx" / "model.onnx", onnx)
        code, output = verify()
    assert code == 1 and "(request req-a3): onnx swapped" in first_broken(output)


def test_corrupted_signature_is_caught_and_named(trail):
    stored = trail.run_dir("req-a3") / "audit" / "attestation.json"
    with tampered(stored):
        document = json.loads(stored.read_text())
        signature = bytearray(base64.b64decode(document["signature"]["value"]))
        signature[0] ^= 0x01
        document["signature"]["value"] = base64.b64encode(bytes(signature)).decode()
        stored.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        code, output = verify()
    assert code == 1 and "(request req-a3)" in first_broken(output) and "does not verify" in output


def test_attestation_resigned_with_another_key_is_not_trusted(trail):
    from pipelines.audit import signing

    stored = trail.run_dir("req-a3") / "audit" / "attestation.json"
    statement = json.loads(stored.read_text())["statement"]
    forger = signing.SigningKey(signing.Ed25519PrivateKey.generate(), "file", "forger")
    forged = signing.attest(forger, **{k: v for k, v in statement.items() if k not in ("_type", "signed_at")})
    with tampered(stored):
        stored.write_text(json.dumps(forged, indent=2, sort_keys=True) + "\n")
        code, output = verify()
    assert code == 1 and "(request req-a3)" in first_broken(output) and "not a trusted key" in output


def test_prefect_artifacts_link_the_mlflow_run(trail):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from pipelines.audit.publish import artifact_key

    with get_client(sync_client=True) as client:
        keys = [artifact_key("req-a1"), artifact_key("req-a1") + "-metrics"]
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))
    by_type = {artifact.type: artifact for artifact in artifacts}
    assert trail.outcomes["req-a1"]["mlflow_run_id"] in by_type["markdown"].data
    assert "forget.haze.psnr_gain_over_input_db" in str(by_type["table"].data)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(html: Path, out: Path) -> Path:
    """Render `html` in headless Chromium with networking off; returns the PNG."""
    import subprocess

    png = out / f"{html.stem}.png"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={out / 'chromium-profile'}",
         "--window-size=1100,1600", f"--screenshot={png}", html.as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    return png


@pytest.fixture(scope="module")
def report(trail, tmp_path_factory) -> Path:
    result = CliRunner().invoke(app, ["audit", "report", "req-a3", "--out", str(tmp_path_factory.mktemp("report"))])
    assert result.exit_code == 0, result.output
    return Path(result.output.split("report:")[1].split()[0])


def test_report_is_self_contained_and_shows_the_evidence(report):
    import re

    html = report.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.IGNORECASE), "report links out"
    assert "@import" not in html and "url(http" not in html
    assert html.count("data:image/png;base64,") == 2
    assert "VERIFIED" in html and "forget.haze.psnr_gain_over_input_db" in html and "Lineage of versions" in html


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed: `make browser` (apt-get install chromium)")
def test_report_renders_offline_in_headless_chromium(report, tmp_path):
    from PIL import Image

    pixels = Image.open(screenshot(report, tmp_path)).convert("L")
    low, high = pixels.getextrema()
    assert high - low > 100, "screenshot is blank"
    assert len(pixels.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50


def test_report_holds_no_forget_sample_bytes(report, tiny_world):
    import re

    import numpy as np

    from unlearning.data.pairs import decode_arrays
    from unlearning.data.restoration import set_path

    arrays, _ = decode_arrays(tiny_world.files[set_path("train", "haze")], "haze")
    html = report.read_bytes()
    payloads = [html] + [base64.b64decode(m) for m in re.findall(rb"base64,([A-Za-z0-9+/=]+)", html)]
    for index in range(0, len(arrays["inputs"]), 8):
        for array in (arrays["inputs"][index], arrays["targets"][index]):
            needle = np.ascontiguousarray(array).tobytes()
            assert not any(needle in payload or base64.b64encode(needle) in payload for payload in payloads)
    assert FORGET_PATH.encode() not in html  # req-a3 asked for hashed file names


def test_certificate_names_versions_hashes_and_signature(trail, tmp_path):
    result = CliRunner().invoke(app, ["audit", "certificate", "req-a3", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "certificate-req-a3.html").read_text()
    record = read_record(load_settings(), "req-a3")
    for expected in (record.forget_data["sha256"], record.signing.key_fingerprint, "version 2", "version 3", "yes, at issue time"):
        assert expected in html
    assert FORGET_PATH not in html


def test_show_prints_a_readable_summary_and_the_record(trail):
    result = CliRunner().invoke(app, ["audit", "show", "req-a2"])
    assert result.exit_code == 0
    assert "verdict" in result.output and "rejected at stage verify" in result.output and '"chain"' in result.output


def test_a_record_whose_run_was_soft_deleted_is_reported(trail):
    """The MLflow UI's delete: the run is gone from every view and `mlflow gc` would destroy it."""
    client, run_id = MlflowClient(), trail.outcomes["req-a2"]["mlflow_run_id"]
    client.delete_run(run_id)
    try:
        code, output = verify()
    finally:
        client.restore_run(run_id)
    assert code == 1 and "(request req-a2): run deleted" in first_broken(output) and run_id in output


def _checkpoint_file(trail, request_id: str, directory: Path) -> Path:
    from pipelines.audit.store import read_run_checkpoint

    document = read_run_checkpoint(load_settings(), trail.outcomes[request_id]["mlflow_run_id"])
    path = directory / f"checkpoint-{request_id}.json"
    path.write_text(json.dumps(document))
    return path


def test_every_record_run_holds_a_signed_checkpoint_of_the_chain_as_it_stood(trail, tmp_path):
    from pipelines.audit.checkpoint import check_signature
    from pipelines.audit.signing import trusted_keys

    for length, request_id in enumerate(("req-a1", "req-a2", "req-a3"), start=1):
        document = json.loads(_checkpoint_file(trail, request_id, tmp_path).read_text())
        body = check_signature(document, trusted_keys(load_settings()))
        tags = MlflowClient().get_run(trail.outcomes[request_id]["mlflow_run_id"]).data.tags
        assert (body["chain"], body["length"], body["head_sha256"]) == (MODEL, length, tags[chain_module.TAG_RECORD_SHA])


def test_the_trail_extends_every_earlier_checkpoint(trail, tmp_path):
    held = [_checkpoint_file(trail, request_id, tmp_path) for request_id in ("req-a1", "req-a3")]
    code, output = verify("--checkpoint", str(held[0]), "--checkpoint", str(held[1]))
    assert code == 0 and "extends 2 earlier checkpoint(s)" in output, output


def test_records_cut_from_the_end_with_the_registry_head_rewritten_are_caught_by_a_held_checkpoint(trail, tmp_path):
    held = _checkpoint_file(trail, "req-a3", tmp_path)
    lines = trail.ledger.read_text().splitlines(keepends=True)
    client, settings = MlflowClient(), load_settings()
    head = client.get_registered_model(MODEL).tags
    with tampered(trail.ledger):
        # An adversary with write access to ledger and registry: cut the newest record, fix the head tags.
        trail.ledger.write_text("".join(lines[:2]))
        client.set_registered_model_tag(MODEL, chain_module.TAG_CHAIN_HEAD, json.loads(lines[1])["record_sha256"])
        client.set_registered_model_tag(MODEL, chain_module.TAG_CHAIN_LENGTH, "2")
        try:
            code, output = verify("--checkpoint", str(held))
        finally:
            for tag in (chain_module.TAG_CHAIN_HEAD, chain_module.TAG_CHAIN_LENGTH):
                client.set_registered_model_tag(MODEL, tag, head[tag])
    assert settings and code == 1 and "checkpoint not extended" in output and "1 record(s) were cut from the end" in output


def test_a_rewritten_history_is_caught_by_a_held_checkpoint(trail, tmp_path):
    held = _checkpoint_file(trail, "req-a1", tmp_path)
    lines = trail.ledger.read_text().splitlines(keepends=True)
    first = json.loads(lines[0])
    with tampered(trail.ledger):
        trail.ledger.write_text(json.dumps({**first, "record_sha256": "0" * 64}) + "\n" + "".join(lines[1:]))
        code, output = verify("--checkpoint", str(held))
    assert code == 1 and "record #0 now hashes to 0000000000000000" in output and "rewritten" in output


def test_a_forged_checkpoint_is_refused(trail, tmp_path):
    held = _checkpoint_file(trail, "req-a1", tmp_path)
    document = json.loads(held.read_text())
    document["checkpoint"]["length"] = 1000
    held.write_text(json.dumps(document))
    code, output = verify("--checkpoint", str(held))
    assert code == 1 and "checkpoint signature does not verify" in output


def test_the_certificate_carries_the_checkpoint_and_verify_accepts_it(trail, tmp_path):
    result = CliRunner().invoke(app, ["audit", "certificate", "req-a1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    certificate = tmp_path / "certificate-req-a1.html"
    assert 'id="erasure-checkpoint"' in certificate.read_text() and "erasure audit verify --checkpoint" in certificate.read_text()
    code, output = verify("--checkpoint", str(certificate))
    assert code == 0 and "extends 1 earlier checkpoint(s)" in output, output


def test_certificate_states_the_versions_status_at_issue_time_not_its_status_when_promoted(trail, tmp_path):
    """req-a1 promoted version 2; req-a3 later moved the alias to version 3."""
    result = CliRunner().invoke(app, ["audit", "certificate", "req-a1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "certificate-req-a1.html").read_text()
    assert "now served as" not in html
    assert "version 2 is no longer served as @champion: the alias is on version 3" in html
    assert "promoted to @champion at 20" in html and "registry status tag: superseded" in html


def test_certificate_states_its_claims_and_its_non_claims(trail, tmp_path):
    CliRunner().invoke(app, ["audit", "certificate", "req-a3", "--out", str(tmp_path)])
    html = (tmp_path / "certificate-req-a3.html").read_text()
    assert "version 3 is served as @champion" in html
    assert "What this certifies" in html and "standard error" in html
    assert "Not that the data no longer exists in storage" in html and "retrained without the data" in html


def test_audit_list_stays_one_line_per_request_at_80_columns(trail):
    result = CliRunner().invoke(app, ["audit", "list"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(len(line) <= 80 for line in lines), result.output
    for request_id in ("req-a1", "req-a2", "req-a3"):
        (line,) = [line for line in lines if request_id in line]
        assert MODEL in line or "…" in line
    assert any("req-a2" in line and "rejected" in line for line in lines)


def test_audit_list_wide_and_json(trail):
    wide = CliRunner().invoke(app, ["audit", "list", "--wide"], env={"COLUMNS": "80"})
    run_id = trail.outcomes["req-a1"]["mlflow_run_id"]
    assert wide.exit_code == 0 and any("req-a1" in line and run_id in line for line in wide.output.splitlines())
    rows = json.loads(CliRunner().invoke(app, ["audit", "list", "--json"]).output)
    assert {row["request_id"] for row in rows} >= {"req-a1", "req-a2", "req-a3"}
    assert {row["run_id"] for row in rows if row["request_id"] == "req-a1"} == {run_id}


def test_every_produced_version_has_a_one_line_description(trail):
    client = MlflowClient()
    for request_id, version in (("req-a1", "2"), ("req-a3", "3")):
        description = client.get_model_version(MODEL, version).description
        assert description.startswith(f"request {request_id}: unlearned from version {int(version) - 1} by gradient_ascent")
        assert "verdict passed, promoted to @champion" in description and "\n" not in description


def test_a_promotion_is_attested_as_an_in_toto_statement_in_a_dsse_envelope(trail):
    """Checked as standard tooling would: DSSE PAE, written out here from the spec, and the public key."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    envelope = json.loads((trail.run_dir("req-a1") / "audit" / "attestation.dsse.json").read_text())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    payload = base64.b64decode(envelope["payload"])
    (signature,) = envelope["signatures"]
    signed = b"DSSEv1 28 application/vnd.in-toto+json " + str(len(payload)).encode() + b" " + payload
    public_key = load_pem_public_key((trail.home / "keys" / "attestation-ed25519.pub.pem").read_bytes())
    public_key.verify(base64.b64decode(signature["sig"]), signed)  # raises if it does not verify
    statement = json.loads(payload)
    record = read_record(load_settings(), "req-a1")
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "urn:erasure:predicate:unlearning:v1"
    assert {s["name"].rsplit("/", 1)[1]: s["digest"]["sha256"] for s in statement["subject"]} == {
        "weights.safetensors": record.model.weights_sha256_after, "model.onnx": record.export["onnx_sha256"]}
    tags = MlflowClient().get_run(trail.outcomes["req-a1"]["mlflow_run_id"]).data.tags
    assert statement["predicate"]["audit_record_sha256"] == tags[chain_module.TAG_RECORD_SHA]
    assert statement["predicate"]["request_id"] == "req-a1" and signature["keyid"] == record.signing.key_fingerprint


def test_an_altered_dsse_envelope_is_caught(trail):
    stored = trail.run_dir("req-a1") / "audit" / "attestation.dsse.json"
    with tampered(stored):
        envelope = json.loads(stored.read_text())
        statement = json.loads(base64.b64decode(envelope["payload"]))
        statement["subject"][0]["digest"]["sha256"] = "0" * 64
        envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
        stored.write_text(json.dumps(envelope))
        code, output = verify()
    assert code == 1 and "(request req-a1): dsse signature: DSSE signature does not verify" in output, output
