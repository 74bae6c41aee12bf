"""Writing and reading audit records: MLflow run artifacts, local copies, the ledger, the attestation.

`write_record` is the one place a record becomes permanent. Under the model's ledger lock it links the
record into the chain, stores its canonical bytes (MLflow artifact `audit/record.json` + a local copy),
signs an attestation when a model was promoted, appends the ledger line, and mirrors the chain head
into the registry's tags.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipelines.adapters.settings import Settings
from pipelines.audit import chain as chain_module
from pipelines.audit import checkpoint as checkpoint_module
from pipelines.audit import signing
from pipelines.audit.record import AuditRecord, ChainLink, canonical_bytes, field_digests, hashed_file_id, now

RECORD_ARTIFACT = "audit/record.json"


def local_record_path(settings: Settings, request_id: str) -> Path:
    return settings.audit_dir / f"{request_id}.json"


def apply_privacy(record: AuditRecord) -> None:
    """With hashed file names, the forget set's path becomes its hashed id everywhere in the record."""
    if record.privacy.file_names != "hashed":
        return
    path = record.forget_data.get("path")
    if not path or str(path).startswith("file-"):
        return
    hidden = hashed_file_id(str(path))
    record.forget_data["path"] = hidden
    for name in (str(path), Path(str(path)).name):
        if record.error:
            record.error = record.error.replace(name, hidden)
        record.verdict["reasons"] = [reason.replace(name, hidden) for reason in record.verdict.get("reasons", [])]


def _log_texts(mlflow_client, run_id: str, contents: dict[str, bytes]) -> None:
    """Upload `contents` ({artifact path: bytes}) to run `run_id` in one artifact call."""
    with tempfile.TemporaryDirectory() as scratch:
        for artifact_path, content in contents.items():
            staged = Path(scratch) / artifact_path
            staged.parent.mkdir(parents=True, exist_ok=True)
            staged.write_bytes(content)
        mlflow_client.log_artifacts(run_id, scratch)


def _model_exists(mlflow_client, name: str | None) -> bool:
    from mlflow.exceptions import MlflowException

    if not name:
        return False
    try:
        mlflow_client.get_registered_model(name)
        return True
    except MlflowException:
        return False


def write_record(settings: Settings, record: AuditRecord) -> Path:
    """Chain, store and (for a promotion) attest `record`; returns the local copy's path. Safe to retry."""
    from pipelines.adapters.registry import client

    apply_privacy(record)
    key = signing.load_signing_key(settings)
    record.signing = key.info()
    chain = chain_module.chain_name(record.model.name)
    mlflow_client = client(settings) if record.mlflow_run_id else None
    with chain_module.locked_ledger(settings, chain) as ledger:
        head = ledger.head
        # A retried audit stage finds its own line at the head: keep its place instead of linking to itself.
        retried = head is not None and record.mlflow_run_id is not None and head.mlflow_run_id == record.mlflow_run_id
        if retried:
            sequence, previous = head.sequence, head.previous_record_sha256
        else:
            sequence, previous = len(ledger.entries), head.record_sha256 if head else None
        record.chain = ChainLink(model=chain, sequence=sequence, previous_record_sha256=previous)
        document = canonical_bytes(record)
        digest = hashlib.sha256(document).hexdigest()

        path = local_record_path(settings, record.request_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(document)

        attestation_digest = None
        if mlflow_client is not None:
            from mlflow.entities import RunTag

            run_id = record.mlflow_run_id
            mlflow_client.log_batch(run_id, tags=[RunTag(tag, value) for tag, value in {
                "erasure.request_id": record.request_id,
                "erasure.status": record.status,
                "erasure.model": record.model.name or "",
                "erasure.version_before": record.model.version_before or "",
                "erasure.version_after": record.model.version_after or "",
                chain_module.TAG_RECORD_SHA: digest,
                chain_module.TAG_SEQUENCE: str(sequence),
            }.items()])
            artifacts = {RECORD_ARTIFACT: document}
            if record.status == "passed" and record.model.promoted and record.model.version_after:
                attestation = signing.attest(
                    key,
                    request_id=record.request_id,
                    model=record.model.name,
                    version=record.model.version_after,
                    weights_sha256=record.model.weights_sha256_after,
                    onnx_sha256=(record.export or {}).get("onnx_sha256"),
                    audit_record_sha256=digest,
                    chain_sequence=sequence,
                )
                attestation_bytes = (json.dumps(attestation, indent=2, sort_keys=True) + "\n").encode()
                attestation_digest = hashlib.sha256(attestation_bytes).hexdigest()
                envelope = signing.dsse_envelope(key, attestation["statement"])
                artifacts[signing.ATTESTATION_ARTIFACT] = attestation_bytes
                artifacts[signing.DSSE_ARTIFACT] = (json.dumps(envelope, indent=2) + "\n").encode()
            _log_texts(mlflow_client, run_id, artifacts)

        if not retried:
            ledger.append(
                chain_module.LedgerEntry(
                    sequence=sequence,
                    request_id=record.request_id,
                    status=record.status,
                    mlflow_run_id=record.mlflow_run_id,
                    record_sha256=digest,
                    previous_record_sha256=previous,
                    version_after=record.model.version_after,
                    attestation_sha256=attestation_digest,
                    recorded_at=now(),
                    field_sha256=field_digests(json.loads(document)),
                )
            )

        # A signed checkpoint of the chain as it now stands: whoever keeps it can later prove the trail extends it.
        checkpoint = checkpoint_module.sign_checkpoint(key, chain, len(ledger.entries), ledger.head.record_sha256)
        checkpoint_document = checkpoint_module.checkpoint_bytes(checkpoint)
        checkpoint_module.local_checkpoint_path(settings, chain).write_bytes(checkpoint_document)

        if mlflow_client is not None:
            _log_texts(mlflow_client, record.mlflow_run_id, {checkpoint_module.CHECKPOINT_ARTIFACT: checkpoint_document})
            if _model_exists(mlflow_client, record.model.name):
                for tag, value in chain_module.head_tags(ledger).items():
                    mlflow_client.set_registered_model_tag(record.model.name, tag, value)
                if record.model.version_after:
                    from pipelines.adapters.registry import describe_version, version_description

                    describe_version(settings, record.model.name, record.model.version_after, version_description(
                        record.request_id, record.model.version_before, record.status,
                        record.model.alias if record.model.promoted else None, record.method.get("name"), sequence, digest,
                    ))
                    for tag, value in {
                        chain_module.TAG_RECORD_SHA: digest,
                        chain_module.TAG_SEQUENCE: str(sequence),
                        chain_module.TAG_KEY: key.fingerprint,
                    }.items():
                        mlflow_client.set_model_version_tag(record.model.name, record.model.version_after, tag, value)
            mlflow_client.set_terminated(record.mlflow_run_id, "FINISHED" if record.status == "passed" else "FAILED")
    return path


def read_run_artifact(settings: Settings, run_id: str, artifact_path: str) -> bytes | None:
    """The bytes of one artifact of run `run_id`, or None when the run or artifact is gone."""
    from mlflow.exceptions import MlflowException

    from pipelines.adapters.registry import client

    with tempfile.TemporaryDirectory() as scratch:
        try:
            local = client(settings).download_artifacts(run_id, artifact_path, scratch)
        except (MlflowException, OSError):
            return None
        path = Path(local)
        return path.read_bytes() if path.is_file() else None


def find_run_id(settings: Settings, request_id: str) -> str | None:
    """The newest audit run of `request_id` (a request id that was run twice has two)."""
    from pipelines.adapters.registry import client

    mlflow_client = client(settings)
    experiment = mlflow_client.get_experiment_by_name(settings.audit_experiment)
    if experiment is None:
        return None
    runs = mlflow_client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`erasure.request_id` = '{request_id}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def read_record(settings: Settings, request_id: str) -> AuditRecord | None:
    """The record of `request_id` from MLflow, falling back to the local copy."""
    run_id = find_run_id(settings, request_id)
    document = read_run_artifact(settings, run_id, RECORD_ARTIFACT) if run_id else None
    if document is None:
        path = local_record_path(settings, request_id)
        document = path.read_bytes() if path.exists() else None
    return AuditRecord.model_validate_json(document) if document is not None else None


def read_run_checkpoint(settings: Settings, run_id: str) -> dict[str, Any] | None:
    """The signed checkpoint written right after this run's record was chained."""
    document = read_run_artifact(settings, run_id, checkpoint_module.CHECKPOINT_ARTIFACT)
    return json.loads(document) if document is not None else None


def read_attestation(settings: Settings, run_id: str) -> dict[str, Any] | None:
    document = read_run_artifact(settings, run_id, signing.ATTESTATION_ARTIFACT)
    return json.loads(document) if document is not None else None


def list_records(settings: Settings) -> list[dict[str, str]]:
    """One summary row per audited request, newest first, from the audit experiment's run tags."""
    from pipelines.adapters.registry import client

    mlflow_client = client(settings)
    experiment = mlflow_client.get_experiment_by_name(settings.audit_experiment)
    if experiment is None:
        return []
    rows = []
    for run in mlflow_client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"]):
        tags = run.data.tags
        rows.append(
            {
                "request_id": tags.get("erasure.request_id", ""),
                "status": tags.get("erasure.status", ""),
                "model": tags.get("erasure.model", ""),
                "version_before": tags.get("erasure.version_before", ""),
                "version_after": tags.get("erasure.version_after", ""),
                "sequence": tags.get(chain_module.TAG_SEQUENCE, ""),
                "record_sha256": tags.get(chain_module.TAG_RECORD_SHA, ""),
                "started": datetime.fromtimestamp(run.info.start_time / 1000, timezone.utc).isoformat(timespec="seconds"),
                "run_id": run.info.run_id,
            }
        )
    return rows
