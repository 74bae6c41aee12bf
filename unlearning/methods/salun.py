"""SalUn (Fan et al., ICLR 2024): unlearn only the weights most salient to the forget loss.

First, the gradient of the forget loss over the whole forget set gives each weight a saliency |g|;
the top `mask_fraction` of weights (one global threshold) may change, the rest are frozen by masking
their gradients. Then the forget objective runs on the masked weights with a retain term: random
labels for classification (as in the paper); for restoration, which has no random label, the
do-nothing-bounded ascent of `gradient_ascent`.
"""

from __future__ import annotations

import torch
from pydantic import Field

from unlearning.data.pairs import PairSet
from unlearning.methods.base import MethodParams, UnlearningMethod, UnlearningProblem, batches, register
from unlearning.methods.random_labels import random_labels_loss


class SalUnParams(MethodParams):
    mask_fraction: float = Field(0.5, gt=0.0, le=1.0)
    retain_weight: float = Field(1.0, ge=0.0, le=100.0)


def saliency_mask(problem: UnlearningProblem, fraction: float, batch_size: int) -> dict[str, torch.Tensor]:
    """1 for the `fraction` of weights with the largest forget-loss gradient magnitude, else 0.

    A weight whose gradient is exactly zero is never salient, so the mask may hold fewer than
    `fraction` of the weights: a trained ReLU network has many (56 % of the demo restorer's), and a
    threshold that reaches zero would otherwise let every weight change and SalUn would silently be
    plain gradient ascent.
    """
    model = problem.model
    model.zero_grad(set_to_none=True)
    for batch in batches(problem.forget, batch_size, problem.device):
        # Sum, not mean, so every forget example counts equally whatever the batching.
        problem.task.loss(model(batch.inputs), batch.targets).sum().backward()
    gradients = {name: p.grad.abs() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    flat = torch.cat([g.flatten() for g in gradients.values()])
    keep = max(1, int(round(fraction * flat.numel())))
    chosen = torch.zeros_like(flat)
    chosen[torch.topk(flat, keep, sorted=False).indices] = 1.0
    chosen *= (flat > 0).float()
    masks, offset = {}, 0
    for name, gradient in gradients.items():
        masks[name] = chosen[offset : offset + gradient.numel()].view_as(gradient)
        offset += gradient.numel()
    return masks


@register
class SalUn(UnlearningMethod):
    name = "salun"
    Params = SalUnParams

    def prepare(self, problem: UnlearningProblem) -> None:
        self.mask = saliency_mask(problem, self.params.mask_fraction, self.params.batch_size)
        self.label_generator = torch.Generator().manual_seed(self.params.seed + 1)

    def loss(self, problem: UnlearningProblem, forget_batch: PairSet, retain_batch: PairSet | None) -> torch.Tensor:
        if problem.task.kind == "classification":
            forget_term = random_labels_loss(problem, forget_batch, self.label_generator)
        else:
            forget_term = -self.forget_loss(problem, forget_batch, bounded=True).mean()
        return forget_term + self.params.retain_weight * self.retain_loss(problem, retain_batch)

    def after_backward(self, problem: UnlearningProblem) -> None:
        for name, parameter in problem.model.named_parameters():
            if parameter.grad is not None:
                parameter.grad.mul_(self.mask[name])
