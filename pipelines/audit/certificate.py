"""The deletion certificate: one printable HTML page for the data subject or a regulator."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipelines.adapters.settings import Settings
from pipelines.audit import checkpoint as checkpoint_module
from pipelines.audit.record import canonical_bytes, now
from pipelines.audit.report import TEMPLATES, ReportError
from pipelines.audit.store import find_run_id, read_attestation, read_record, read_run_checkpoint
from pipelines.audit.verify import verify_trail


def version_status(settings: Settings, record) -> dict[str, str | None]:
    """Where the produced version stands at issue time: promoted when, and whether its alias still points at it."""
    from mlflow.exceptions import MlflowException

    from pipelines.adapters import registry

    name, alias, version = record.model.name, record.model.alias, record.model.version_after
    status = {"version": version, "alias": alias, "promoted_at": None, "alias_now": None, "tag": None}
    if not (name and version):
        return status
    mlflow_client = registry.client(settings)
    try:
        tags = mlflow_client.get_model_version(name, version).tags
        status["tag"], status["promoted_at"] = tags.get(registry.TAG_STATUS), tags.get(registry.TAG_PROMOTED_AT)
    except MlflowException:
        status["tag"] = "deleted from the registry"
    try:
        status["alias_now"] = str(mlflow_client.get_model_version_by_alias(name, alias).version) if alias else None
    except MlflowException:
        pass
    # Versions promoted before the promoted_at tag existed: the record finished right after the alias moved.
    if record.model.promoted and status["promoted_at"] is None:
        status["promoted_at"] = f"{record.finished_at} (record finished; promotion time not tagged)"
    return status


def write_certificate(settings: Settings, request_id: str, out: Path) -> Path:
    """Write `out/certificate-<request_id>.html`; returns its path."""
    record = read_record(settings, request_id)
    if record is None:
        raise ReportError(f"request_id {request_id!r}: no audit record")
    run_id = find_run_id(settings, request_id)
    trail = verify_trail(settings, record.model.name) if record.model.name else None
    checkpoint = read_run_checkpoint(settings, run_id) if run_id else None
    html = TEMPLATES.get_template("certificate.html").render(
        record=record,
        record_sha256=hashlib.sha256(canonical_bytes(record)).hexdigest(),
        attestation=read_attestation(settings, run_id) if run_id else None,
        checkpoint=checkpoint,
        embedded_checkpoint=checkpoint_module.embed(checkpoint) if checkpoint else "",
        checks=[m for m in record.metrics if m.threshold is not None],
        verified=bool(trail and trail.ok),
        first_problem=trail.first_problem if trail else "no model named",
        issued_at=now(),
        standing=version_status(settings, record),
    )
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"certificate-{request_id}.html"
    path.write_text(html)
    return path
