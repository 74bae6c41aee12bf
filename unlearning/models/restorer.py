"""A compact all-in-one restorer: a two-level U-Net that predicts a residual on top of its input.

The global residual makes "do nothing" (the identity) the model's natural resting point, which is
exactly the behaviour a forgotten degradation should fall back to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn


@dataclass(frozen=True)
class RestorerConfig:
    width: int = 16
    levels: int = 2


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class Restorer(nn.Module):
    """U-Net restorer; height and width must be multiples of 2**levels."""

    task_kind: ClassVar[str] = "restoration"

    def __init__(self, config: RestorerConfig = RestorerConfig()):
        super().__init__()
        self.config = config
        widths = [config.width * 2**level for level in range(config.levels + 1)]
        self.stem = _block(3, widths[0])
        self.down = nn.ModuleList(_block(widths[i], widths[i + 1]) for i in range(config.levels))
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(config.levels))
        )
        self.merge = nn.ModuleList(_block(2 * widths[i], widths[i]) for i in reversed(range(config.levels)))
        self.head = nn.Conv2d(widths[0], 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(nn.functional.avg_pool2d(skips[-1], 2)))
        features = skips.pop()
        for upsample, merge in zip(self.up, self.merge):
            features = merge(torch.cat([upsample(features), skips.pop()], dim=1))
        return x + self.head(features)
