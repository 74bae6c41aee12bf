"""Gradient ascent on the forget set, bounded so it cannot run past "doing nothing".

Each forget example's loss is capped at the loss of a model that learned nothing about it (the
identity for restoration, a uniform guess for classification): once the model is there, that example
stops pushing. A retain term keeps everything else. With `bound="none"` and no retain weight this is
plain unbounded ascent, which collapses the model: kept as the negative control.

Optional stop rule: every `stop_check_every` steps, stop once the held-out forget check split
(`problem.check`, never trained on) is no better off than doing nothing.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from unlearning.data.pairs import PairSet
from unlearning.methods.base import MethodParams, UnlearningMethod, UnlearningProblem, UnlearningError, register


class GradientAscentParams(MethodParams):
    bound: Literal["do_nothing", "none"] = "do_nothing"
    retain_weight: float = Field(1.0, ge=0.0, le=100.0)
    stop_check_every: int = Field(0, ge=0, le=10_000, description="0: run all steps")


@register
class GradientAscent(UnlearningMethod):
    name = "gradient_ascent"
    Params = GradientAscentParams

    def prepare(self, problem: UnlearningProblem) -> None:
        if self.params.stop_check_every and (problem.check is None or len(problem.check) == 0):
            raise UnlearningError(f"method {self.name!r}: stop_check_every needs a held-out check split")

    def loss(self, problem: UnlearningProblem, forget_batch: PairSet, retain_batch: PairSet | None) -> torch.Tensor:
        forget_loss = self.forget_loss(problem, forget_batch, bounded=self.params.bound == "do_nothing")
        return -forget_loss.mean() + self.params.retain_weight * self.retain_loss(problem, retain_batch)

    @torch.no_grad()
    def should_stop(self, problem: UnlearningProblem) -> bool:
        every = self.params.stop_check_every
        if not every or (self.step + 1) % every:
            return False
        problem.model.eval()
        check = problem.check
        inputs, targets = check.inputs.to(problem.device), check.targets.to(problem.device)
        loss = problem.task.loss(problem.model(inputs), targets).mean()
        return bool(loss >= problem.task.do_nothing_loss(inputs, targets).mean())
