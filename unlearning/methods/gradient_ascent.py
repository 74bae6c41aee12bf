"""Gradient ascent on the forget set, bounded so it cannot run past "doing nothing".

Each forget example's loss is capped at the loss of returning its degraded input unchanged: once
the model is no better than the identity on an example, that example stops pushing. A retain term
keeps the other degradations restored. With `bound="none"` and no retain weight this is plain
unbounded ascent, which collapses the model: kept as the negative control.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from unlearning.data.pairs import PairSet
from unlearning.methods.base import MethodParams, UnlearningMethod, UnlearningProblem, per_example_mse, register


class GradientAscentParams(MethodParams):
    bound: Literal["do_nothing", "none"] = "do_nothing"
    retain_weight: float = Field(1.0, ge=0.0, le=100.0)


@register
class GradientAscent(UnlearningMethod):
    name = "gradient_ascent"
    Params = GradientAscentParams

    def loss(self, problem: UnlearningProblem, forget_batch: PairSet, retain_batch: PairSet | None) -> torch.Tensor:
        forget_loss = per_example_mse(problem.model(forget_batch.inputs), forget_batch.targets)
        if self.params.bound == "do_nothing":
            # min() has zero gradient past the cap, so an example that is already forgotten stops pushing.
            forget_loss = torch.minimum(forget_loss, per_example_mse(forget_batch.inputs, forget_batch.targets))
        loss = -forget_loss.mean()
        if retain_batch is not None and self.params.retain_weight > 0:
            retain_loss = per_example_mse(problem.model(retain_batch.inputs), retain_batch.targets).mean()
            loss = loss + self.params.retain_weight * retain_loss
        return loss
