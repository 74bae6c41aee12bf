"""Charts and sample grids for the review report, shared by the kinds of model (pipelines/kinds/).

Plots are base64 PNG data URIs, so the report is one self-contained page. Only held-out evaluation
sets the record lists are read, never the forget set.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: the report is rendered on servers without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from pipelines.adapters.settings import Settings  # noqa: E402
from pipelines.audit.record import AuditRecord  # noqa: E402

GRID_EXAMPLES = 3


class FigureError(RuntimeError):
    """A figure cannot be drawn: a version or evaluation set is missing or does not match its record."""


def png_data_uri(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def metric(record: AuditRecord, name: str):
    return next((m for m in record.metrics if m.name == name), None)


def accuracy_chart(record: AuditRecord) -> str | None:
    """Accuracy before / after on the forgotten data and on the kept test examples, with each check's line."""
    sets = sorted({m.name.split(".")[1] for m in record.metrics if m.name.startswith("after.") and m.name.endswith(".accuracy")})
    if not sets:
        return None
    figure, axis = plt.subplots(figsize=(1.9 * len(sets) + 2.5, 3.4))
    width = 0.35
    for offset, (stage, colour) in enumerate((("before", "#4c72b0"), ("after", "#dd8452"))):
        values = [metric(record, f"{stage}.{s}.accuracy") for s in sets]
        axis.bar(np.arange(len(sets)) + (offset - 0.5) * width, [v.value for v in values], width,
                 yerr=[v.stderr or 0 for v in values], color=colour, label=f"model {stage}", capsize=2)
    forget, kept = metric(record, "forget.accuracy"), metric(record, "retain.test_accuracy_drop")
    for index, name in enumerate(sets):
        if name == "kept-test" and kept is not None:
            line, label = metric(record, "before.kept-test.accuracy").value - kept.threshold, "retain: after must be above"
        elif name != "kept-test" and forget is not None:
            line, label = forget.threshold, "forget: after must be below"
        else:
            continue
        axis.hlines(line, index - 1.2 * width, index + 1.2 * width, colors="#c44e52", linestyles="--", label=label)
    return finish(figure, axis, sets, "accuracy, ± stderr", "Accuracy on the forgotten data and on kept test examples",
                   legend_at="center right")


def restoration_chart(record: AuditRecord) -> str | None:
    """PSNR of doing nothing / before / after per evaluation set, with the pass line each check draws."""
    sets = sorted({m.name.split(".")[1] for m in record.metrics if m.name.startswith("after.")})
    if not sets:
        return None
    figure, axis = plt.subplots(figsize=(1.9 * len(sets) + 2.5, 3.4))
    width = 0.26
    for offset, (stage, colour) in enumerate((("input", "#bbbbbb"), ("before", "#4c72b0"), ("after", "#dd8452"))):
        values = [metric(record, f"{stage}.{s}.psnr") for s in sets]
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
        forget, retain = metric(record, f"forget.{name}.psnr_gain_over_input_db"), metric(record, f"retain.{name}.psnr_drop_db")
        if forget is not None:
            line, label = metric(record, f"input.{name}.psnr").value + forget.threshold, "forget: after must be below"
        elif retain is not None:
            line, label = metric(record, f"before.{name}.psnr").value - retain.threshold, "retain: after must be above"
        else:
            continue
        axis.hlines(line, index - 1.6 * width, index + 1.6 * width, colors="#c44e52", linestyles="--", label=label)
    return finish(figure, axis, sets, "PSNR (dB), mean ± stderr",
                   "Restoration quality per degradation, with each check's threshold", legend_at="lower right")


def finish(figure, axis, sets: list[str], ylabel: str, title: str, legend_at: str) -> str:
    handles, labels = axis.get_legend_handles_labels()
    unique = dict(zip(labels, handles))  # one legend entry per threshold kind, not per bar group
    axis.legend(unique.values(), unique.keys(), fontsize=7, loc=legend_at)
    axis.set_xticks(range(len(sets)), sets)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    return png_data_uri(figure)


def load_version(settings: Settings, name: str, version: str) -> torch.nn.Module:
    """A registered version's model, refused if its weights no longer match the registry's hash."""
    from pipelines.adapters import registry

    try:
        return registry.load_version(settings, name, version).model
    except registry.ModelIntegrityError as error:
        raise FigureError(f"{name} version {version}: {error}; run `erasure audit verify`") from None


def evaluation_sets(settings: Settings, record: AuditRecord) -> dict[str, Any]:
    from pipelines.adapters import datastore
    from pipelines.kinds.formats import TableColumns, decode_set
    from unlearning.data.pairs import PairSet

    forget = {record.forget_data.get("sha256")}
    sets = {}
    for provenance in record.evaluation_data:
        if provenance.get("sha256") in forget:  # belt and braces: never draw the forget set itself
            continue
        fetched = datastore.fetch(settings.data_repo, provenance["path"], provenance["commit"])
        name = Path(provenance["path"]).stem
        table = TableColumns(**provenance["table"]) if "table" in provenance else None
        sets[name] = PairSet.from_arrays(name, decode_set(fetched, table))
    return sets


def restoration_grid(settings: Settings, record: AuditRecord) -> str | None:
    """Held-out examples per set: degraded input, model before, model after, clean target."""
    from unlearning.metrics import predict

    if not (record.model.name and record.model.version_before and record.evaluation_data):
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


def class_share_chart(record: AuditRecord) -> str | None:
    """Share of samples per class (by the judge) before and after, on the same latents, with the forget line."""
    shares = {stage: sorted(((int(m.name.rsplit(".", 1)[1]), m.value) for m in record.metrics
                             if m.name.startswith(f"{stage}.class_share.")))
              for stage in ("before", "after")}
    if not shares["after"]:
        return None
    labels = [label for label, _ in shares["before"]]
    figure, axis = plt.subplots(figsize=(6.5, 3.2))
    width = 0.38
    for offset, (stage, colour) in enumerate((("before", "#4c72b0"), ("after", "#dd8452"))):
        axis.bar(np.arange(len(labels)) + (offset - 0.5) * width, [v for _, v in shares[stage]], width, color=colour,
                 label=f"generator {stage}")
    forget = metric(record, "forget.share")
    if forget is not None:
        forgotten = record.forget_data.get("feature", {}).get("class")
        if forgotten in labels:
            index = labels.index(forgotten)
            axis.hlines(forget.threshold, index - 1.2 * width, index + 1.2 * width, colors="#c44e52", linestyles="--",
                        label="forget: after must be below")
    return finish(figure, axis, [str(label) for label in labels], "share of samples (judge)",
                  "Which digit the generator draws, on the same latents", legend_at="upper right")


def generator_grid(settings: Settings, record: AuditRecord, samples: int = 32) -> str | None:
    """Samples from the same latents (the record's latent bank) before and after: no data, only generated images."""
    from unlearning.generation_metrics import generate_images, latent_bank

    bank = next((e.get("latent_bank") for e in record.evaluation_data if "latent_bank" in e), None)
    if not (record.model.name and record.model.version_before and bank):
        return None
    models = {"before": load_version(settings, record.model.name, record.model.version_before)}
    if record.model.version_after:
        models["after"] = load_version(settings, record.model.name, record.model.version_after)
    latents = latent_bank(models["before"].config.latent_dim, bank["size"], bank["seed"])[:samples]
    columns = 8
    figure, axes = plt.subplots(len(models), 1, figsize=(columns * 0.9, 0.9 * len(models) * samples / columns + 0.6),
                                squeeze=False)
    for row, (label, model) in enumerate(models.items()):
        images = generate_images(model, latents, torch.device("cpu"))[:, 0]
        tiles = images.reshape(samples // columns, columns, 8, 8).permute(0, 2, 1, 3).reshape(samples // columns * 8, columns * 8)
        axis = axes[row][0]
        axis.imshow(tiles.numpy(), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        axis.set_xticks([]), axis.set_yticks([])
        axis.set_title(f"generator {label} (version {record.model.version_before if label == 'before' else record.model.version_after})",
                       fontsize=8)
    figure.tight_layout()
    return png_data_uri(figure)
