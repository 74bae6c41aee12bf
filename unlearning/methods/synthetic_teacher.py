"""Forget a degradation with no retain data: bounded ascent, and the original model as teacher on inputs
synthesised from the forget images.

The restoration paper's point (arXiv 2409.00685) is that the model's other skills must be kept when the other
data cannot be used. The forget set still holds clean images: re-degraded with the degradations the model must
keep (`keep_degradations`, synthesised by `unlearning.data.degradations`), they are inputs on which the
original model's outputs are exactly the behaviour to keep. Each step minimises

    forget term + teacher_weight * |model(x) - original(x)|^2 on a batch of those inputs

(plus, optionally, the same on adversarial examples crafted around the forget inputs, as `adversarial_ga`
does, and the retain loss when a request does give retain data). The teacher's outputs are computed once,
before the loop; synthesis is seeded, so a run is reproducible. No retain data is read: the method declares
`needs_retain = False`.

The forget term (`forget_objective`) is by default a regression of the forget inputs onto what doing nothing
outputs (the input itself, for restoration): what a model retrained without the degradation does with it
(the retrained demo restorer's haze PSNR is the hazy input's, 13.5 dB). It is a target, so the run settles
where the teacher term and it agree; bounded ascent (`bounded_ascent`, the paper's, capped at the do-nothing
loss) keeps pushing until the cap and then lets the teacher pull the forgotten skill back, and on the demo
restorer it oscillated around the retrained haze PSNR by ±1 dB and cost one seed of three its rain
(bench/results/no_retain.md).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from unlearning.data.degradations import DEGRADATIONS
from unlearning.data.pairs import PairSet
from unlearning.methods.adversarial_ga import l2_attack
from unlearning.methods.base import MethodParams, UnlearningMethod, UnlearningProblem, register
from unlearning.tasks import RESTORATION


class SyntheticTeacherParams(MethodParams):
    keep_degradations: list[str] = Field(
        default_factory=lambda: ["noise", "rain"], min_length=1,
        description="degradations the model must keep restoring; synthesised from the forget set's clean images")
    keep_clean: bool = Field(True, description="also keep the original's output on the clean images themselves")
    forget_objective: Literal["do_nothing_target", "bounded_ascent"] = Field(
        "do_nothing_target", description="do_nothing_target: regress forget inputs onto the do-nothing output; "
        "bounded_ascent: ascent on the forget loss, capped at the do-nothing loss")
    teacher_weight: float = Field(
        3.0, ge=0.0, le=1000.0,
        description="3: on the tiny world weight 1 let one seed of three lose 0.5 dB of rain (tests/model/test_no_retain.py)")
    adversarial_weight: float = Field(0.0, ge=0.0, le=1000.0, description="0: no adversarial term")
    epsilon: float = Field(0.1, gt=0.0, le=1.0)
    retain_weight: float = Field(1.0, ge=0.0, le=100.0, description="used only when the request gives retain data")

    @field_validator("keep_degradations")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        unknown = sorted(set(names) - DEGRADATIONS.keys())
        if unknown:
            raise ValueError(f"unknown degradations {unknown}; known: {sorted(DEGRADATIONS)}")
        return names


def synthesise(clean: torch.Tensor, degradations: list[str], keep_clean: bool, seed: int) -> torch.Tensor:
    """`clean` (N x 3 x H x W in [0, 1]) degraded by each named degradation, stacked (and `clean` itself)."""
    rng = np.random.default_rng(seed)
    images = (clean.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    inputs = [clean.detach().cpu().float()] if keep_clean else []
    for name in degradations:
        degraded = DEGRADATIONS[name](images, rng)
        inputs.append(torch.from_numpy(degraded).permute(0, 3, 1, 2).float() / 255.0)
    return torch.cat(inputs)


@register
class SyntheticTeacher(UnlearningMethod):
    name = "synthetic_teacher"
    Params = SyntheticTeacherParams
    needs_retain = False
    task_kinds = (RESTORATION.kind,)

    @torch.no_grad()
    def prepare(self, problem: UnlearningProblem) -> None:
        inputs = synthesise(problem.forget.targets, self.params.keep_degradations, self.params.keep_clean, self.params.seed)
        teacher = [problem.original(chunk.to(problem.device)).float().cpu() for chunk in inputs.split(256)]
        self.kept = PairSet("synthetic-kept", inputs, torch.cat(teacher))
        self.sampler = torch.Generator().manual_seed(self.params.seed + 1)

    def loss(self, problem: UnlearningProblem, forget_batch: PairSet, retain_batch: PairSet | None) -> torch.Tensor:
        size = min(len(self.kept), self.params.batch_size * (len(self.params.keep_degradations) + self.params.keep_clean))
        chosen = torch.randint(len(self.kept), (size,), generator=self.sampler)
        inputs, taught = self.kept.inputs[chosen].to(problem.device), self.kept.targets[chosen].to(problem.device)
        keep = problem.task.divergence(problem.model(inputs), taught).mean()
        loss = self.forget_term(problem, forget_batch) + self.params.teacher_weight * keep
        if self.params.adversarial_weight:
            adversarial = l2_attack(problem.model, problem.task, forget_batch, self.params.epsilon, steps=1)
            with torch.no_grad():
                reference = problem.original(adversarial)
            loss = loss + self.params.adversarial_weight * problem.task.divergence(problem.model(adversarial), reference).mean()
        return loss + self.params.retain_weight * self.retain_loss(problem, retain_batch)

    def forget_term(self, problem: UnlearningProblem, forget_batch: PairSet) -> torch.Tensor:
        if self.params.forget_objective == "bounded_ascent":
            return -self.forget_loss(problem, forget_batch, bounded=True).mean()
        return problem.task.do_nothing_divergence(forget_batch.inputs, problem.model(forget_batch.inputs)).mean()
