"""A small MLP classifier for 8x8 digits (about 85k parameters with the defaults)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn


@dataclass(frozen=True)
class ClassifierConfig:
    inputs: int = 64
    hidden: int = 256
    depth: int = 2
    classes: int = 10


class DigitsClassifier(nn.Module):
    """Flattens its input, so (N, 64) and (N, 1, 8, 8) both work; returns logits (N, classes)."""

    task_kind: ClassVar[str] = "classification"

    def __init__(self, config: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = [nn.Flatten()]
        width = config.inputs
        for _ in range(config.depth):
            layers += [nn.Linear(width, config.hidden), nn.ReLU()]
            width = config.hidden
        layers.append(nn.Linear(width, config.classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
