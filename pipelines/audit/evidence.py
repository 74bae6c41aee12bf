"""The uncertainty of the evidence: per-example PSNR spread behind each mean the verdict reads."""

from __future__ import annotations

import math

import torch

from pipelines.audit.record import Evidence, MetricEvidence
from unlearning.data.pairs import PairSet
from unlearning.metrics import psnr_per_example


def _stderr(values: torch.Tensor) -> float:
    return float(values.std(unbiased=True) / math.sqrt(values.numel())) if values.numel() > 1 else float("nan")


def restoration_evidence(
    metrics: list[MetricEvidence],
    outputs_before: dict[str, torch.Tensor],
    outputs_after: dict[str, torch.Tensor],
    evaluation: dict[str, PairSet],
    seeds: dict[str, int],
) -> tuple[list[MetricEvidence], Evidence]:
    """`metrics` with stderr and example counts filled in, and the evidence summary for the record;
    the outputs are the original's and the unlearned model's on each evaluation set."""
    spread: dict[str, torch.Tensor] = {}
    for name, pairs in evaluation.items():
        before = psnr_per_example(outputs_before[name], pairs.targets)
        after = psnr_per_example(outputs_after[name], pairs.targets)
        degraded = psnr_per_example(pairs.inputs, pairs.targets)
        spread |= {
            f"before.{name}.psnr": before,
            f"after.{name}.psnr": after,
            f"input.{name}.psnr": degraded,
            f"forget.{name}.psnr_gain_over_input_db": after - degraded,
            f"retain.{name}.psnr_drop_db": before - after,
        }
    filled = [
        metric.model_copy(update={"stderr": _stderr(spread[metric.name]), "examples": spread[metric.name].numel()})
        if metric.name in spread
        else metric
        for metric in metrics
    ]
    evidence = Evidence(
        metrics_used=[metric.name for metric in metrics if metric.threshold is not None],
        seeds=seeds,
        evaluation_examples={name: len(pairs.inputs) for name, pairs in evaluation.items()},
        mia=None,
    )
    return filled, evidence
