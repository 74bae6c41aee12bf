"""The training loop shared by the DVC `train` stage and the retrained-without-forget reference."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from unlearning.data.pairs import PairSet, concat
from unlearning.device import autocast


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 2000
    batch_size: int = 32
    learning_rate: float = 2e-3
    seed: int = 0


def train_restorer(
    model: nn.Module, train_sets: list[PairSet], config: TrainConfig, device: torch.device, show_progress: bool = True
) -> nn.Module:
    """Fit `model` to the union of `train_sets` with MSE, Adam and a cosine schedule; returns it on `device`."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    pairs = concat(train_sets, "train")
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)
    for _ in tqdm(range(config.steps), desc="train", disable=not show_progress, mininterval=2):
        batch = torch.randint(len(pairs), (config.batch_size,), generator=generator)
        inputs, targets = pairs.inputs[batch].to(device), pairs.targets[batch].to(device)
        with autocast(device):
            loss = nn.functional.mse_loss(model(inputs).float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()
