"""SCRUB (Kurmanji et al., NeurIPS 2023): a student moves away from its teacher on forget data and
stays with it on retain data.

Teacher = the frozen original. The first `max_steps` steps alternate a max step (maximise the
divergence from the teacher on a forget batch) with a min step (minimise divergence on a retain batch
plus the task loss); the rest are min steps only, which repairs what the max steps damaged. The max
step's divergence is capped at the teacher's distance to doing nothing (`bound="do_nothing"`), for the
same reason as bounded ascent: past that point the student is not forgetting, it is breaking.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from unlearning.data.pairs import PairSet
from unlearning.methods.base import MethodParams, UnlearningMethod, UnlearningProblem, register


class ScrubParams(MethodParams):
    max_steps: int = Field(50, ge=0, le=100_000)
    distill_weight: float = Field(1.0, ge=0.0, le=100.0)
    task_weight: float = Field(1.0, ge=0.0, le=100.0)
    bound: Literal["do_nothing", "none"] = "do_nothing"


@register
class Scrub(UnlearningMethod):
    name = "scrub"
    Params = ScrubParams
    needs_retain = True

    def loss(self, problem: UnlearningProblem, forget_batch: PairSet, retain_batch: PairSet | None) -> torch.Tensor:
        task = problem.task
        if self.step < self.params.max_steps and self.step % 2 == 0:
            with torch.no_grad():
                teacher = problem.original(forget_batch.inputs)
            divergence = task.divergence(problem.model(forget_batch.inputs), teacher)
            if self.params.bound == "do_nothing":
                divergence = torch.minimum(divergence, task.do_nothing_divergence(forget_batch.inputs, teacher))
            return -divergence.mean()
        with torch.no_grad():
            teacher = problem.original(retain_batch.inputs)
        outputs = problem.model(retain_batch.inputs)
        return (
            self.params.distill_weight * task.divergence(outputs, teacher).mean()
            + self.params.task_weight * task.loss(outputs, retain_batch.targets).mean()
        )
