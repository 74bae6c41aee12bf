"""The review report: one self-contained HTML page per request (plots as base64 PNG, no network).

It re-loads the registered versions before/after and the held-out evaluation sets from DVC to draw
restorations. Only the evaluation sets the record lists are read, never the forget set.
"""

from __future__ import annotations

import base64
import io
import tempfile
from pathlib import Path
from typing import Any

import jinja2
import matplotlib

matplotlib.use("Agg")  # headless: the report is rendered on servers without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from pipelines.audit.record import AuditRecord  # noqa: E402
from pipelines.audit.store import find_run_id, read_attestation, read_record  # noqa: E402
from pipelines.audit.verify import TrailReport, verify_trail  # noqa: E402
from pipelines.settings import Settings  # noqa: E402

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")), autoescape=True, undefined=jinja2.StrictUndefined
)
GRID_EXAMPLES = 3


class ReportError(RuntimeError):
    """The report cannot be drawn: a record, version or evaluation set is missing."""


def png_data_uri(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _metric(record: AuditRecord, name: str):
    return next((m for m in record.metrics if m.name == name), None)


def _task(record: AuditRecord) -> str:
    return record.unlearning.get("task", "restoration")  # records before the classifier path were restorers


def metrics_figure(record: AuditRecord) -> str | None:
    if _task(record) == "classification":
        return accuracy_figure(record)
    return restoration_figure(record)


def accuracy_figure(record: AuditRecord) -> str | None:
    """Accuracy before / after on the forgotten data and on the kept test examples, with each check's line."""
    sets = sorted({m.name.split(".")[1] for m in record.metrics if m.name.startswith("after.") and m.name.endswith(".accuracy")})
    if not sets:
        return None
    figure, axis = plt.subplots(figsize=(1.9 * len(sets) + 2.5, 3.4))
    width = 0.35
    for offset, (stage, colour) in enumerate((("before", "#4c72b0"), ("after", "#dd8452"))):
        values = [_metric(record, f"{stage}.{s}.accuracy") for s in sets]
        axis.bar(np.arange(len(sets)) + (offset - 0.5) * width, [v.value for v in values], width,
                 yerr=[v.stderr or 0 for v in values], color=colour, label=f"model {stage}", capsize=2)
    forget, kept = _metric(record, "forget.accuracy"), _metric(record, "retain.test_accuracy_drop")
    for index, name in enumerate(sets):
        if name == "kept-test" and kept is not None:
            line, label = _metric(record, "before.kept-test.accuracy").value - kept.threshold, "retain: after must be above"
        elif name != "kept-test" and forget is not None:
            line, label = forget.threshold, "forget: after must be below"
        else:
            continue
        axis.hlines(line, index - 1.2 * width, index + 1.2 * width, colors="#c44e52", linestyles="--", label=label)
    return _finish(figure, axis, sets, "accuracy, ± stderr", "Accuracy on the forgotten data and on kept test examples",
                   legend_at="center right")


def restoration_figure(record: AuditRecord) -> str | None:
    """PSNR of doing nothing / before / after per evaluation set, with the pass line each check draws."""
    sets = sorted({m.name.split(".")[1] for m in record.metrics if m.name.startswith("after.")})
    if not sets:
        return None
    figure, axis = plt.subplots(figsize=(1.9 * len(sets) + 2.5, 3.4))
    width = 0.26
    for offset, (stage, colour) in enumerate((("input", "#bbbbbb"), ("before", "#4c72b0"), ("after", "#dd8452"))):
        values = [_metric(record, f"{stage}.{s}.psnr") for s in sets]
        axis.bar(
            np.arange(len(sets)) + (offset - 1) * width,
            [v.value for v in values],
            width,
            yerr=[v.stderr or 0 for v in values],
            color=colour,
            label={"input": "degraded input", "before": "model before", "after": "model after"}[stage],
            capsize=2,
        )
    for index, name in enumerate(sets):
        forget, retain = _metric(record, f"forget.{name}.psnr_gain_over_input_db"), _metric(record, f"retain.{name}.psnr_drop_db")
        if forget is not None:
            line, label = _metric(record, f"input.{name}.psnr").value + forget.threshold, "forget: after must be below"
        elif retain is not None:
            line, label = _metric(record, f"before.{name}.psnr").value - retain.threshold, "retain: after must be above"
        else:
            continue
        axis.hlines(line, index - 1.6 * width, index + 1.6 * width, colors="#c44e52", linestyles="--", label=label)
    return _finish(figure, axis, sets, "PSNR (dB), mean ± stderr",
                   "Restoration quality per degradation, with each check's threshold", legend_at="lower right")


def _finish(figure, axis, sets: list[str], ylabel: str, title: str, legend_at: str) -> str:
    handles, labels = axis.get_legend_handles_labels()
    unique = dict(zip(labels, handles))  # one legend entry per threshold kind, not per bar group
    axis.legend(unique.values(), unique.keys(), fontsize=7, loc=legend_at)
    axis.set_xticks(range(len(sets)), sets)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    return png_data_uri(figure)


def load_version(settings: Settings, name: str, version: str) -> torch.nn.Module:
    """A registered version's model, refused if its weights no longer match the registry's hash."""
    import mlflow

    from pipelines import registry

    tags = registry.client(settings).get_model_version(name, version).tags
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=scratch)) / "artifacts"
        if registry.sha256_file(local / registry.WEIGHTS_FILE) != tags.get(registry.TAG_WEIGHTS):
            raise ReportError(f"{name} version {version}: weights do not match erasure.weights_sha256; run `erasure audit verify`")
        model, _ = registry.read_model_files(local)
    return model


def evaluation_sets(settings: Settings, record: AuditRecord) -> dict[str, Any]:
    from pipelines import datastore
    from unlearning.data.pairs import PairSet, decode_arrays

    forget = {record.forget_data.get("sha256")}
    sets = {}
    for provenance in record.evaluation_data:
        if provenance.get("sha256") in forget:  # belt and braces: never draw the forget set itself
            continue
        fetched = datastore.fetch(settings.data_repo, provenance["path"], provenance["commit"])
        name = Path(provenance["path"]).stem
        sets[name] = PairSet.from_arrays(name, decode_arrays(fetched.content, fetched.path)[0])
    return sets


def restoration_grid(settings: Settings, record: AuditRecord) -> str | None:
    """Held-out examples per set: degraded input, model before, model after, clean target."""
    from unlearning.metrics import predict

    if _task(record) != "restoration" or not (record.model.name and record.model.version_before and record.evaluation_data):
        return None
    models = {"before": load_version(settings, record.model.name, record.model.version_before)}
    if record.model.version_after:
        models["after"] = load_version(settings, record.model.name, record.model.version_after)
    sets = evaluation_sets(settings, record)
    columns = ["degraded", *models, "clean"]
    rows = [(name, index) for name in sorted(sets) for index in range(min(GRID_EXAMPLES, len(sets[name])))]
    figure, axes = plt.subplots(len(rows), len(columns), figsize=(1.3 * len(columns), 1.3 * len(rows)), squeeze=False)
    cpu = torch.device("cpu")
    for row, (name, index) in enumerate(rows):
        pairs = sets[name]
        images = {"degraded": pairs.inputs[index], "clean": pairs.targets[index]}
        for label, model in models.items():
            images[label] = predict(model, pairs.inputs[index : index + 1], cpu)[0]
        for column, label in enumerate(columns):
            axis = axes[row][column]
            axis.imshow(images[label].clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
            axis.set_xticks([]), axis.set_yticks([])
            if row == 0:
                axis.set_title(label, fontsize=8)
            if column == 0:
                axis.set_ylabel(name, fontsize=8)
    figure.tight_layout()
    figure.suptitle("Held-out evaluation examples (never the forget set)", fontsize=9, y=1.02)
    return png_data_uri(figure)


def lineage(settings: Settings, model: str | None) -> list[dict[str, str]]:
    from mlflow.exceptions import MlflowException

    from pipelines import registry

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


def verification(settings: Settings, record: AuditRecord) -> TrailReport | None:
    return verify_trail(settings, record.model.name) if record.model.name else None


def write_report(settings: Settings, request_id: str, out: Path) -> Path:
    """Write `out/report.html` for `request_id`; returns its path."""
    record = read_record(settings, request_id)
    if record is None:
        raise ReportError(f"request_id {request_id!r}: no audit record")
    run_id = find_run_id(settings, request_id)
    html = TEMPLATES.get_template("report.html").render(
        record=record,
        metrics_plot=metrics_figure(record),
        grid_plot=restoration_grid(settings, record) if record.metrics else None,
        lineage=lineage(settings, record.model.name),
        verification=verification(settings, record),
        attestation=read_attestation(settings, run_id) if run_id else None,
        checks=[m for m in record.metrics if m.threshold is not None],
    )
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.html"
    path.write_text(html)
    return path
