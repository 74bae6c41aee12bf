"""Gradient ascent plus adversarial examples that hold the model's behaviour in place.

After Cha et al. (AAAI 2024), used for all-in-one restoration in arXiv 2409.00685: bounded ascent on
the forget set, plus a term that keeps the model equal to the ORIGINAL model on adversarial examples
crafted near the data. `around="forget"` crafts them around the forget inputs (needs no retain data:
the decision function just off the forgotten examples stays put); `around="retain"` around retain
inputs. Crafting is L2-PGD against the current model on the true targets (`attack="fgsm"`: one
normalised-gradient step). `epsilon` is the L2 radius per element (RMS), so one value fits 64-pixel
digits and 3x32x32 patches alike. PGD costs several forward/backward passes per step, so
`refresh_every=k` reuses one adversarial batch for k steps.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from unlearning.data.pairs import PairSet
from unlearning.methods.base import MethodParams, UnlearningMethod, UnlearningProblem, UnlearningError, register
from unlearning.tasks import Task


class AdversarialGAParams(MethodParams):
    around: Literal["forget", "retain"] = "forget"
    attack: Literal["pgd", "fgsm"] = "pgd"
    attack_steps: int = Field(3, ge=1, le=100)
    epsilon: float = Field(0.1, gt=0.0, le=1.0)
    refresh_every: int = Field(1, ge=1, le=100_000)
    adversarial_weight: float = Field(1.0, ge=0.0, le=100.0)
    retain_weight: float = Field(1.0, ge=0.0, le=100.0)


def l2_attack(model: torch.nn.Module, task: Task, batch: PairSet, epsilon: float, steps: int) -> torch.Tensor:
    """Inputs within an L2 ball (radius epsilon * sqrt(elements)) that raise the model's loss; in [0, 1]."""
    inputs = batch.inputs.detach()
    radius = epsilon * inputs[0].numel() ** 0.5
    step_size = radius if steps == 1 else 2.5 * radius / steps
    delta = torch.zeros_like(inputs)
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = task.loss(model(inputs + delta), batch.targets).sum()
        (gradient,) = torch.autograd.grad(loss, delta)
        norms = gradient.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (inputs.dim() - 1))
        delta = delta.detach() + step_size * gradient / norms
        delta_norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view_as(norms)
        delta = delta * (radius / delta_norms).clamp(max=1.0)
        delta = (inputs + delta).clamp(0, 1) - inputs
    return (inputs + delta).detach()


@register
class AdversarialGradientAscent(UnlearningMethod):
    name = "adversarial_ga"
    Params = AdversarialGAParams

    def prepare(self, problem: UnlearningProblem) -> None:
        if self.params.around == "retain" and (problem.retain is None or len(problem.retain) == 0):
            raise UnlearningError(f"method {self.name!r} with around='retain' needs retain data")
        self.adversarial: tuple[torch.Tensor, torch.Tensor] | None = None

    def loss(self, problem: UnlearningProblem, forget_batch: PairSet, retain_batch: PairSet | None) -> torch.Tensor:
        if self.adversarial is None or self.step % self.params.refresh_every == 0:
            source = forget_batch if self.params.around == "forget" else retain_batch
            steps = 1 if self.params.attack == "fgsm" else self.params.attack_steps
            inputs = l2_attack(problem.model, problem.task, source, self.params.epsilon, steps)
            with torch.no_grad():
                self.adversarial = (inputs, problem.original(inputs))
        inputs, original_outputs = self.adversarial
        keep = problem.task.divergence(problem.model(inputs), original_outputs).mean()
        forget_loss = self.forget_loss(problem, forget_batch, bounded=True).mean()
        return (
            -forget_loss
            + self.params.adversarial_weight * keep
            + self.params.retain_weight * self.retain_loss(problem, retain_batch)
        )
