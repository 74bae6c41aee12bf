"""Reset and repair: re-draw the weights that serve the forget set, then repair on retain data only.

After Scissorhands (Wu et al., ECCV 2024: reset the weights most sensitive to the forget data, then
repair) and the impair-repair of UNSIR (Tarun et al., 2023), with SSD's selection (Foster et al.,
2024: weights that matter much more to the forget set than to the retain set).

1. Saliency of each weight = |forget-loss gradient| / |retain-loss gradient| (per-example means); the
   top `reset_fraction` of weights (one global threshold) are re-drawn from N(0, (`reset_scale` × their
   tensor's std)²), a fresh-initialisation scale, so what they memorised of the forget set is gone.
2. Repair: descend on the retain loss (plus, optionally, distillation towards the original on retain).
   The forget set is never trained on, in either direction, so the model meets it as unseen data;
   this is what sample forgetting asks (a retrained model treats forgotten examples like held-out ones)
   and why no ascent is used: ascent drives forget accuracy below held-out accuracy, which a per-example
   membership attack reads as well as it reads memorisation.
3. Optional stop rule: every `stop_check_every` steps, stop once the held-out check split
   (`problem.check`, never trained on) is again no worse off than under the original, i.e. the repair
   has given back the original's generalisation.
"""

from __future__ import annotations

import torch
from pydantic import Field

from unlearning.data.pairs import PairSet
from unlearning.methods.base import (
    MethodParams,
    UnlearningError,
    UnlearningMethod,
    UnlearningProblem,
    batches,
    register,
)


class ResetAndRepairParams(MethodParams):
    reset_fraction: float = Field(0.3, gt=0.0, le=1.0)
    reset_scale: float = Field(1.0, ge=0.0, le=10.0, description="std of the re-drawn weights, × their tensor's std")
    distill_weight: float = Field(0.0, ge=0.0, le=100.0)
    stop_check_every: int = Field(0, ge=0, le=10_000, description="0: run all steps")


def mean_gradient_magnitudes(problem: UnlearningProblem, pairs: PairSet, batch_size: int) -> dict[str, torch.Tensor]:
    """|d mean loss / d weight| over all of `pairs`, per parameter."""
    model = problem.model
    model.zero_grad(set_to_none=True)
    for batch in batches(pairs, batch_size, problem.device):
        # Sum then divide once, so every example counts equally whatever the batching.
        problem.task.loss(model(batch.inputs), batch.targets).sum().backward()
    magnitudes = {name: p.grad.abs() / len(pairs) for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return magnitudes


@register
class ResetAndRepair(UnlearningMethod):
    name = "reset_and_repair"
    Params = ResetAndRepairParams
    needs_retain = True

    def prepare(self, problem: UnlearningProblem) -> None:
        if self.params.stop_check_every and (problem.check is None or len(problem.check) == 0):
            raise UnlearningError(f"method {self.name!r}: stop_check_every needs a held-out check split")
        self.reset_salient_weights(problem)
        if self.params.stop_check_every:
            self.check_loss_before = self.check_loss(problem, problem.original)

    @torch.no_grad()
    def reset_salient_weights(self, problem: UnlearningProblem) -> None:
        with torch.enable_grad():
            on_forget = mean_gradient_magnitudes(problem, problem.forget, max(self.params.batch_size, 256))
            on_retain = mean_gradient_magnitudes(problem, problem.retain, max(self.params.batch_size, 256))
        # The floor keeps a weight that retain data never moves from winning on a tiny forget gradient alone.
        floor = torch.cat([g.flatten() for g in on_retain.values()]).mean() * 1e-3
        saliency = {name: on_forget[name] / (on_retain[name] + floor) for name in on_forget}
        flat = torch.cat([s.flatten() for s in saliency.values()])
        count = max(1, round(self.params.reset_fraction * flat.numel()))
        threshold = torch.topk(flat, count, sorted=False).values.min()
        generator = torch.Generator().manual_seed(self.params.seed)
        for name, parameter in problem.model.named_parameters():
            if name not in saliency:
                continue
            chosen = saliency[name] >= threshold
            scale = parameter.std() if parameter.numel() > 1 else parameter.abs().mean()
            fresh = torch.randn(parameter.shape, generator=generator).to(parameter.device) * scale * self.params.reset_scale
            parameter.copy_(torch.where(chosen, fresh, parameter))

    def loss(self, problem: UnlearningProblem, forget_batch: PairSet, retain_batch: PairSet | None) -> torch.Tensor:
        outputs = problem.model(retain_batch.inputs)
        loss = problem.task.loss(outputs, retain_batch.targets).mean()
        if self.params.distill_weight:
            with torch.no_grad():
                teacher = problem.original(retain_batch.inputs)
            loss = loss + self.params.distill_weight * problem.task.divergence(outputs, teacher).mean()
        return loss

    @torch.no_grad()
    def check_loss(self, problem: UnlearningProblem, model: torch.nn.Module) -> float:
        model.eval()
        losses = [problem.task.loss(model(b.inputs), b.targets) for b in batches(problem.check, 256, problem.device)]
        return float(torch.cat(losses).mean())

    def should_stop(self, problem: UnlearningProblem) -> bool:
        every = self.params.stop_check_every
        if not every or (self.step + 1) % every:
            return False
        return self.check_loss(problem, problem.model) <= self.check_loss_before
