"""The review report: one self-contained HTML page per request (plots as base64 PNG, no network).

It re-loads the registered versions before/after and the held-out evaluation sets from DVC to draw
restorations. Only the evaluation sets the record lists are read, never the forget set.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from pipelines.adapters.settings import Settings
from pipelines.audit.figures import FigureError
from pipelines.audit.record import AuditRecord
from pipelines.audit.store import find_run_id, read_attestation, read_record
from pipelines.audit.verify import TrailReport, verify_trail

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")), autoescape=True, undefined=jinja2.StrictUndefined
)


class ReportError(FigureError):
    """The report cannot be drawn: a record, version or evaluation set is missing."""


def lineage(settings: Settings, model: str | None) -> list[dict[str, str]]:
    from mlflow.exceptions import MlflowException

    from pipelines.adapters import registry

    if not model:
        return []
    try:
        versions = registry.client(settings).search_model_versions(f"name = '{model}'")
    except MlflowException:
        return []
    return [
        {
            "version": str(v.version),
            "parent": v.tags.get(registry.TAG_PARENT, "-"),
            "request": v.tags.get(registry.TAG_REQUEST, "(base)"),
            "status": v.tags.get(registry.TAG_STATUS, "-"),
            "weights": v.tags.get(registry.TAG_WEIGHTS, "")[:16],
            "onnx": v.tags.get("erasure.onnx_sha256", "")[:16],
            "record": v.tags.get("erasure.audit.record_sha256", "")[:16],
        }
        for v in sorted(versions, key=lambda v: int(v.version))
    ]


def record_figures(settings: Settings, record: AuditRecord):
    """The charts of the record's kind of model (records from before the kinds were restorers)."""
    from pipelines.kinds import Figures, kind_of_record

    return kind_of_record(record).figures(settings, record) if record.model.name else Figures()


def verification(settings: Settings, record: AuditRecord) -> TrailReport | None:
    return verify_trail(settings, record.model.name) if record.model.name else None


def write_report(settings: Settings, request_id: str, out: Path) -> Path:
    """Write `out/report.html` for `request_id`; returns its path."""
    record = read_record(settings, request_id)
    if record is None:
        raise ReportError(f"request_id {request_id!r}: no audit record")
    run_id = find_run_id(settings, request_id)
    figures = record_figures(settings, record)
    html = TEMPLATES.get_template("report.html").render(
        record=record,
        metrics_plot=figures.metrics,
        grid_plot=figures.samples,
        lineage=lineage(settings, record.model.name),
        verification=verification(settings, record),
        attestation=read_attestation(settings, run_id) if run_id else None,
        checks=[m for m in record.metrics if m.threshold is not None],
    )
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.html"
    path.write_text(html)
    return path
