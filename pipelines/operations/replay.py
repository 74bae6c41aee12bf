"""Answering an already-decided request from its local audit record, without starting the flow.

At most once per request id: a request whose record says `passed` or `rejected` gets that outcome back.
For the same file (same sha256) that answer needs only the record, so `erasure request run` gives it
from here before it imports Prefect, MLflow, DVC or GX. Anything else (no local record, a `failed` one,
a different file under a decided id) is left to the flow, which decides it exactly as before. This
module imports none of those tools (tests/pipeline/test_operations.py checks that).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipelines.adapters.settings import Settings
from pipelines.audit import chain
from pipelines.audit.record import AuditRecord
from pipelines.audit.store import local_record_path
from pipelines.flow.request_file import raw_request_id, request_file_digest

DECIDED = ("passed", "rejected")


def summarize(record: AuditRecord, location: Path, replayed: bool = False) -> dict:
    """The flow's result: what the CLI prints and what the inbox files next to the request."""
    return {
        "request_id": record.request_id,
        "status": record.status,
        "replayed": replayed,
        "stage": record.failed_stage,
        "error": record.error,
        "reasons": record.verdict.get("reasons", []),
        "model": record.model.name,
        "version_before": record.model.version_before,
        "version_after": record.model.version_after if record.model.promoted else None,
        "audit_record": str(location),
        "mlflow_run_id": record.mlflow_run_id,
    }


def decided_outcome(settings: Settings, request_file: Path) -> dict | None:
    """The recorded outcome of `request_file` when its local record decided this very file, else None.

    Reads the file as the flow does (bounded, hashed in chunks). Only the very record chained in its
    model's ledger answers (same bytes as the ledger's record sha256); a record that cannot be read or
    parsed, or that differs from what was chained, is no answer here: the flow then reads the registry's
    copy and decides.
    """
    head, sha256 = request_file_digest(Path(request_file))
    request_id = raw_request_id(head.decode(errors="replace"))
    if request_id is None:
        return None
    path = local_record_path(settings, request_id)
    try:
        document = path.read_bytes()
        record = AuditRecord.model_validate_json(document)
    except (OSError, ValueError):
        return None
    if record.status not in DECIDED or record.request_sha256 != sha256 or record.request_id != request_id:
        return None
    if not _chained(settings, record, document):
        return None
    return summarize(record, path, replayed=True)


def _chained(settings: Settings, record: AuditRecord, document: bytes) -> bool:
    """`document` is the record the ledger chained at the record's own position (not edited since)."""
    link = record.chain
    if link is None:
        return False
    try:
        entries = chain.read_ledger(chain.ledger_path(settings, link.model))
    except (OSError, ValueError):
        return False
    entry = next((entry for entry in entries if entry.sequence == link.sequence), None)
    return entry is not None and entry.request_id == record.request_id and entry.record_sha256 == hashlib.sha256(document).hexdigest()
