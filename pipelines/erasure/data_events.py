"""After a request: retrying its data erasure and purging the erased objects, each an audit event chained
in the model's trail after the request's record (`event: data-erasure` / `data-purge`, `subject` naming it)."""

from __future__ import annotations

import hashlib
from typing import Any

from pipelines.adapters import registry
from pipelines.adapters.settings import Settings
from pipelines.audit import AuditRecord, now, read_record, write_record
from pipelines.audit import chain as chain_module
from pipelines.erasure import lineage
from pipelines.erasure import training_data as erasure


class DataEventError(LookupError):
    """The request has no record, or nothing in it to erase or purge."""


def _subject(settings: Settings, record: AuditRecord) -> dict[str, Any]:
    entries = chain_module.read_ledger(chain_module.ledger_path(settings, chain_module.chain_name(record.model.name)))
    entry = next((e for e in reversed(entries) if e.request_id == record.request_id), None)
    return {"request_id": record.request_id, "record_sha256": entry.record_sha256 if entry else None,
            "chain_sequence": entry.sequence if entry else None}


def _events(settings: Settings, record: AuditRecord, event: str) -> list[AuditRecord]:
    entries = chain_module.read_ledger(chain_module.ledger_path(settings, chain_module.chain_name(record.model.name)))
    prefix = f"{record.request_id}.{event}"
    ids = [e.request_id for e in entries if e.request_id == prefix or e.request_id.startswith(prefix + "-")]
    return [found for found in (read_record(settings, event_id) for event_id in ids) if found is not None]


def write_event(settings: Settings, subject: AuditRecord, event: str, status: str, **fields: Any) -> AuditRecord:
    from pipelines.operations import recovery

    earlier = _events(settings, subject, event)
    event_id = f"{subject.request_id}.{event}" + (f"-{len(earlier) + 1}" if earlier else "")
    record = AuditRecord(request_id=event_id, event=event, status=status, subject=_subject(settings, subject),
                         requested_by="erasure data " + event.removeprefix("data-"), reason=f"{event} for {subject.request_id}",
                         **fields)
    record.model.name, record.model.alias = subject.model.name, subject.model.alias
    run = recovery.audit_run(settings, event_id, hashlib.sha256(event_id.encode()).hexdigest())
    record.mlflow_run_id = run.info.run_id
    record.finished_at = now()
    write_record(settings, record)
    return record


def request_record(settings: Settings, request_id: str) -> AuditRecord:
    record = read_record(settings, request_id)
    if record is None:
        raise DataEventError(f"no audit record for request {request_id!r}")
    return record


def latest_erasure(settings: Settings, record: AuditRecord) -> dict[str, Any] | None:
    """The request's data erasure: from a retry event if there was one, else its own record."""
    for event in reversed(_events(settings, record, "data-erasure")):
        if event.data_erasure and event.data_erasure.get("status") in ("committed", "unchanged"):
            return event.data_erasure
    return record.data_erasure


def retry_erasure(settings: Settings, request_id: str) -> AuditRecord | None:
    """Commit the erasure a request's record says failed; None when it needs no retry."""
    record = request_record(settings, request_id)
    done = latest_erasure(settings, record)
    if not done or done.get("status") != "failed":
        return None
    if record.training_data is None:
        raise DataEventError(f"request {request_id}: its record has no training lineage to erase from")
    trained_on = lineage.Lineage(record.training_data["commit"],
                                 {f["path"]: f["dvc_md5"] for f in record.training_data["files"]})
    try:
        result, new = erasure.erase(settings, done["request_ids"], done["example_keys"], trained_on)
    except Exception as error:  # noqa: BLE001 - the failure is itself recorded, to be retried again
        failed = {**done, "error": f"{type(error).__name__}: {error}"}
        return write_event(settings, record, "data-erasure", "failed", failed_stage="erase data",
                           error=failed["error"], data_erasure=failed)
    if record.model.version_after:
        registry.tag_version(settings, record.model.name, record.model.version_after,
                             {**new.tags(), lineage.TAG_DATA_ERASURE: result.status})
    return write_event(settings, record, "data-erasure", "passed", data_erasure=result.as_record())


def purge_request(settings: Settings, request_id: str) -> AuditRecord | None:
    """Delete the objects the request's erasure replaced from the DVC cache and remotes, as an audit event;
    None when an earlier purge left nothing to delete."""
    record = request_record(settings, request_id)
    done = latest_erasure(settings, record)
    if not done or done.get("status") != "committed":
        state = (done or {}).get("status", "none")
        raise DataEventError(f"request {request_id}: no committed data erasure to purge (erasure status: {state})")
    result = erasure.purge(settings, done)
    if not result["removed"] and _events(settings, record, "data-purge"):
        return None
    return write_event(settings, record, "data-purge", "passed", purge={**result, "erasure_commit": done.get("commit")})
