"""Selective Synaptic Dampening (Foster et al., AAAI 2024): a one-shot, training-free edit.

The diagonal Fisher importance of each weight (mean squared gradient of the loss) is measured on the
forget set and on the retain set. Weights far more important to the forget set than to the rest
(forget importance > `selection_weighting` x retain importance) are shrunk by
min(1, `dampening_constant` x retain importance / forget importance). No optimiser, no steps.
"""

from __future__ import annotations

import time

import torch
from pydantic import BaseModel, ConfigDict, Field

from unlearning.data.pairs import PairSet
from unlearning.methods.base import UnlearningMethod, UnlearningProblem, UnlearningRun, batches, register


class SSDParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    selection_weighting: float = Field(10.0, gt=0.0, le=1e6)
    dampening_constant: float = Field(1.0, gt=0.0, le=1e6)
    batch_size: int = Field(64, ge=1, le=4096)
    seed: int = 0


def fisher_importance(problem: UnlearningProblem, pairs: PairSet, batch_size: int) -> dict[str, torch.Tensor]:
    """Mean over batches of the squared batch-loss gradient, per weight (the SSD paper's estimate)."""
    model = problem.model
    importance = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    count = 0
    for batch in batches(pairs, batch_size, problem.device):
        model.zero_grad(set_to_none=True)
        problem.task.loss(model(batch.inputs), batch.targets).mean().backward()
        for name, parameter in model.named_parameters():
            if parameter.grad is not None:
                importance[name] += parameter.grad.pow(2)
        count += 1
    model.zero_grad(set_to_none=True)
    return {name: value / max(count, 1) for name, value in importance.items()}


@register
class SelectiveSynapticDampening(UnlearningMethod):
    name = "ssd"
    Params = SSDParams
    needs_retain = True

    def loss(self, problem, forget_batch, retain_batch):  # pragma: no cover - SSD takes no gradient steps
        raise NotImplementedError("ssd edits weights directly; it has no loss")

    def run(self, problem: UnlearningProblem, show_progress: bool = True) -> UnlearningRun:
        self.check_problem(problem)
        started = time.perf_counter()
        problem.model.eval()
        forget_importance = fisher_importance(problem, problem.forget, self.params.batch_size)
        retain_importance = fisher_importance(problem, problem.retain, self.params.batch_size)
        with torch.no_grad():
            for name, parameter in problem.model.named_parameters():
                selected = forget_importance[name] > self.params.selection_weighting * retain_importance[name]
                factor = (self.params.dampening_constant * retain_importance[name] / forget_importance[name]).clamp(max=1.0)
                parameter[selected] *= factor[selected]
        batches_seen = -(-len(problem.forget) // self.params.batch_size) - (-len(problem.retain) // self.params.batch_size)
        return self.finish(problem, batches_seen, started)
