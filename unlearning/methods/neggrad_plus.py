"""NegGrad+ (Kurmanji et al., SCRUB paper): descend on retain while ascending on forget, unbounded.

loss = retain_weight * retain loss - forget_weight * forget loss. Unlike `gradient_ascent` nothing
caps the ascent, so the step budget is what keeps it from collapsing.
"""

from __future__ import annotations

import torch
from pydantic import Field

from unlearning.data.pairs import PairSet
from unlearning.methods.base import MethodParams, UnlearningMethod, UnlearningProblem, register


class NegGradPlusParams(MethodParams):
    retain_weight: float = Field(1.0, ge=0.0, le=100.0)
    forget_weight: float = Field(0.1, ge=0.0, le=100.0)


@register
class NegGradPlus(UnlearningMethod):
    name = "neggrad_plus"
    Params = NegGradPlusParams
    needs_retain = True

    def loss(self, problem: UnlearningProblem, forget_batch: PairSet, retain_batch: PairSet | None) -> torch.Tensor:
        forget_loss = self.forget_loss(problem, forget_batch, bounded=False).mean()
        return self.params.retain_weight * self.retain_loss(problem, retain_batch) - self.params.forget_weight * forget_loss
