"""The training loop shared by the DVC `train` stage, the retrained-without-forget reference and the
benchmark's shadow models: any task, Adam with a cosine schedule, sampled mini-batches."""

from __future__ import annotations

from dataclasses import dataclass

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


def train_model(
    model: nn.Module, train_set: PairSet, task: Task, config: TrainConfig, device: torch.device, show_progress: bool = True
) -> nn.Module:
    """Fit `model` to `train_set` under `task`'s loss; returns it on `device` in eval mode."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)
    for _ in tqdm(range(config.steps), desc="train", disable=not show_progress, mininterval=2):
        batch = torch.randint(len(train_set), (config.batch_size,), generator=generator)
        inputs, targets = train_set.inputs[batch].to(device), train_set.targets[batch].to(device)
        with autocast(device):
            loss = task.loss(model(inputs), targets).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


def train_restorer(
    model: nn.Module, train_sets: list[PairSet], config: TrainConfig, device: torch.device, show_progress: bool = True
) -> nn.Module:
    """Fit a restorer to the union of `train_sets` with MSE."""
    return train_model(model, concat(train_sets, "train"), RESTORATION, config, device, show_progress)
