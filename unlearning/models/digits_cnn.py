"""Two small CNN classifiers for 8x8 digits, kept apart on purpose.

`DigitsJudge` decides which class a generated digit shows (forgetting is measured with it, and the
unlearning methods pick their negatives and positives with it). `DigitsFeatureNet` is a different
architecture trained from another seed; its penultimate layer is the feature space of FID/KID, so
quality is never scored by the network that also decides what was forgotten.
Both take N x 1 x 8 x 8 or flat N x 64 inputs in [0, 1] (the digits files hold N x 64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn


@dataclass(frozen=True)
class JudgeConfig:
    channels: int = 16
    classes: int = 10


class DigitsJudge(nn.Module):
    """3x3 convolutions with max-pooling 8 -> 4 -> 2, then a linear layer: logits N x classes."""

    task_kind: ClassVar[str] = "classification"

    def __init__(self, config: JudgeConfig = JudgeConfig()):
        super().__init__()
        self.config = config
        width = config.channels
        self.layers = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(4 * width * 4, config.classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Named x like DigitsClassifier's, so the classifier export path (dynamic_shapes keyed "x") fits.
        return self.layers(x.reshape(-1, 1, 8, 8))


@dataclass(frozen=True)
class FeatureNetConfig:
    channels: int = 24
    feature_dim: int = 64
    classes: int = 10


class DigitsFeatureNet(nn.Module):
    """Unpadded 3x3 convolutions 8 -> 6 -> 4, a tanh feature layer (the FID/KID space), then logits."""

    task_kind: ClassVar[str] = "classification"

    def __init__(self, config: FeatureNetConfig = FeatureNetConfig()):
        super().__init__()
        self.config = config
        width = config.channels
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3), nn.ELU(),
            nn.Conv2d(width, 2 * width, 3), nn.ELU(),
            nn.Flatten(),
            nn.Linear(2 * width * 16, config.feature_dim), nn.Tanh(),
        )
        self.head = nn.Linear(config.feature_dim, config.classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate activations N x feature_dim in (-1, 1): bounded, so FID/KID have a fixed scale
        (unbounded features put KID's cubic kernel in the hundreds), and not half zeros as ReLU's."""
        return self.body(images.reshape(-1, 1, 8, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
