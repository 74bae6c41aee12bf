"""Fine-tune on the retain set only: forgetting by catastrophic interference, the cheapest baseline."""

from __future__ import annotations

import torch

from unlearning.data.pairs import PairSet
from unlearning.methods.base import UnlearningMethod, UnlearningProblem, per_example_mse, register


@register
class FineTune(UnlearningMethod):
    name = "finetune"
    needs_retain = True

    def loss(self, problem: UnlearningProblem, forget_batch: PairSet, retain_batch: PairSet | None) -> torch.Tensor:
        return per_example_mse(problem.model(retain_batch.inputs), retain_batch.targets).mean()
