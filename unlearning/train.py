"""The training loop shared by the DVC `train` stage, the retrained-without-forget reference and the
benchmark's shadow models: any task, Adam with a cosine schedule, sampled mini-batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from unlearning.data.pairs import PairSet, concat
from unlearning.device import autocast
from unlearning.tasks import RESTORATION, Task


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 2000
    batch_size: int = 32
    learning_rate: float = 2e-3
    seed: int = 0
    # Several training sets (the restorer's degradations): one equal sub-batch per set, each set's loss
    # divided by its do-nothing loss, so the degradation with the largest error (haze) cannot drown the
    # others. Off keeps the sampling of one pooled set that the tests' tiny worlds were measured with.
    balance_sets: bool = False


# (generator) -> inputs, targets, per-example loss weights summing to 1 (None: the plain mean)
BatchSampler = Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]


def pooled_sampler(train_set: PairSet, batch_size: int) -> BatchSampler:
    """Uniform mini-batches from one set."""

    def draw(generator: torch.Generator):
        batch = torch.randint(len(train_set), (batch_size,), generator=generator)
        return train_set.inputs[batch], train_set.targets[batch], None

    return draw


def balanced_sampler(train_sets: list[PairSet], task: Task, batch_size: int) -> BatchSampler:
    """One sub-batch per set; each set's mean loss scaled by 1 / its do-nothing loss, sets weighted equally."""
    per_set = max(1, batch_size // len(train_sets))
    scales = [1.0 / float(task.do_nothing_loss(s.inputs, s.targets).mean()) for s in train_sets]
    weights = torch.cat([torch.full((per_set,), scale / (per_set * len(train_sets))) for scale in scales])

    def draw(generator: torch.Generator):
        picks = [torch.randint(len(s), (per_set,), generator=generator) for s in train_sets]
        inputs = torch.cat([s.inputs[batch] for s, batch in zip(train_sets, picks)])
        targets = torch.cat([s.targets[batch] for s, batch in zip(train_sets, picks)])
        return inputs, targets, weights

    return draw


# (steps done, model) -> None; called after every step, e.g. to record a held-out learning curve
StepHook = Callable[[int, nn.Module], None]


def fit(
    model: nn.Module, draw: BatchSampler, task: Task, config: TrainConfig, device: torch.device, show_progress: bool,
    after_step: StepHook | None = None,
) -> nn.Module:
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)
    for step in tqdm(range(config.steps), desc="train", disable=not show_progress, mininterval=2):
        inputs, targets, weights = draw(generator)
        inputs, targets = inputs.to(device), targets.to(device)
        with autocast(device):
            losses = task.loss(model(inputs), targets)
            loss = losses.mean() if weights is None else (losses * weights.to(device)).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if after_step is not None:
            after_step(step + 1, model)
            model.train()
    return model.eval()


def train_model(
    model: nn.Module, train_set: PairSet, task: Task, config: TrainConfig, device: torch.device, show_progress: bool = True
) -> nn.Module:
    """Fit `model` to `train_set` under `task`'s loss; returns it on `device` in eval mode."""
    return fit(model, pooled_sampler(train_set, config.batch_size), task, config, device, show_progress)


def train_restorer(
    model: nn.Module, train_sets: list[PairSet], config: TrainConfig, device: torch.device, show_progress: bool = True,
    after_step: StepHook | None = None,
) -> nn.Module:
    """Fit a restorer to `train_sets` (one per degradation) with MSE, pooled or balanced (`config.balance_sets`)."""
    if config.balance_sets:
        draw = balanced_sampler(train_sets, RESTORATION, config.batch_size)
    else:
        draw = pooled_sampler(concat(train_sets, "train"), config.batch_size)
    return fit(model, draw, RESTORATION, config, device, show_progress, after_step)
