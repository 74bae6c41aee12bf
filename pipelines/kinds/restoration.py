"""Restoration (the all-in-one restorer): forget a degradation, keep restoring the others.

Evaluation: PSNR/SSIM per held-out set; the forgotten degradation must be restored no better than
leaving the input as is, the kept ones within a drop of the original.
"""

from __future__ import annotations

from pydantic import Field

from pipelines.adapters import validation
from pipelines.audit.evidence import restoration_evidence
from pipelines.audit.record import MetricEvidence
from pipelines.kinds.base import Assessment, Figures, KindThresholds, check_metrics, evaluated, register_kind
from pipelines.kinds.files import FileData, FileKind
from unlearning.metrics import RestorationScores, predict, score_outputs
from unlearning.verify import RestorationThresholds, Verdict, verify_restoration


class RestorationRequestThresholds(KindThresholds):
    forget_max_gain_db: float | None = Field(None, ge=-10.0, le=30.0, description="forgotten set: PSNR gain over the input, at most")
    retain_max_drop_db: float | None = Field(None, ge=-10.0, le=30.0, description="each kept set: PSNR drop, at most")

    def verify_thresholds(self) -> RestorationThresholds:
        return RestorationThresholds(**self.model_dump(exclude_none=True))


@register_kind
class RestorationKind(FileKind):
    name = "restoration"
    Thresholds = RestorationRequestThresholds

    def forget_set(self, request, data: FileData, model) -> validation.ForgetSet:
        evaluation = data.forgotten_evaluation.arrays
        return validation.ForgetSet(
            data.forget.arrays["inputs"], data.forget.arrays["targets"], validation.SetSchema.like(evaluation),
            evaluation_inputs=evaluation["inputs"],
        )

    def assess(self, request, original, unlearned, data: FileData, device, seeds) -> Assessment:
        sets = data.evaluation_sets()

        def outputs_and_scores(model, pairs):
            def compute():
                outputs = predict(model, pairs.inputs, device)
                return outputs, score_outputs(outputs, pairs)
            return evaluated(model, (pairs.inputs, pairs.targets), device, compute)

        results_before = {name: outputs_and_scores(original, pairs) for name, pairs in sets.items()}
        results_after = {name: outputs_and_scores(unlearned, pairs) for name, pairs in sets.items()}
        outputs_before = {name: outputs for name, (outputs, _) in results_before.items()}
        outputs_after = {name: outputs for name, (outputs, _) in results_after.items()}
        before = {name: scores for name, (_, scores) in results_before.items()}
        after = {name: scores for name, (_, scores) in results_after.items()}
        verdict = verify_restoration(before, after, [data.forgotten], self.thresholds(request))
        metrics, evidence = restoration_evidence(_metrics(before, after, verdict), outputs_before, outputs_after, sets, seeds)
        return Assessment(metrics, verdict, evidence)

    def figures(self, settings, record) -> Figures:
        from pipelines.audit import figures

        return Figures(metrics=figures.restoration_chart(record),
                       samples=figures.restoration_grid(settings, record) if record.metrics else None)


def _metrics(before: dict[str, RestorationScores], after: dict[str, RestorationScores], verdict: Verdict) -> list[MetricEvidence]:
    metrics = []
    for name in sorted(after):
        for stage, scores in (("before", before[name]), ("after", after[name])):
            metrics += [
                MetricEvidence(name=f"{stage}.{name}.psnr", value=scores.psnr),
                MetricEvidence(name=f"{stage}.{name}.ssim", value=scores.ssim),
            ]
        metrics.append(MetricEvidence(name=f"input.{name}.psnr", value=after[name].input_psnr))
    return metrics + check_metrics(verdict)
