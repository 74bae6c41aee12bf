"""Fine-tune on the retain set only: forgetting by catastrophic interference, the cheapest baseline."""

from __future__ import annotations

import torch

from unlearning.data.pairs import PairSet
from unlearning.methods.base import UnlearningMethod, UnlearningProblem, register


@register
class FineTune(UnlearningMethod):
    name = "finetune"
    needs_retain = True

    def loss(self, problem: UnlearningProblem, forget_batch: PairSet, retain_batch: PairSet | None) -> torch.Tensor:
        return self.retain_loss(problem, retain_batch)
