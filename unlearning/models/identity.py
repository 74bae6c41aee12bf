"""The networks identity unlearning (GUIDE) needs besides the generator, for 8x8 digits.

`InversionEncoder` maps an image to the generator's w (GUIDE inverts the one photo with GOAE); it
predicts an offset from the generator's `w_avg`, which it keeps as a buffer, as GOAE predicts one from
EG3D's. `IdentityNet` stands in for ArcFace / CurricularFace: an instance-discrimination embedding
(unit vectors) trained so that augmented views of one image land together and other images apart. Two
layouts exist so that the embedding used in the loss and the one held out for verification can differ
in architecture, not only in seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn
from torch.nn import functional


@dataclass(frozen=True)
class EncoderConfig:
    w_dim: int = 32
    channels: int = 32
    hidden: int = 128


class InversionEncoder(nn.Module):
    """image N x 1 x 8 x 8 (or N x 64) in [0, 1] -> w N x w_dim, as `w_avg + offset`."""

    task_kind: ClassVar[str] = "inversion"

    def __init__(self, config: EncoderConfig = EncoderConfig()):
        super().__init__()
        self.config = config
        width = config.channels
        self.layers = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),  # 4x4
            nn.Flatten(),
            nn.Linear(2 * width * 16, config.hidden), nn.LeakyReLU(0.2),
            nn.Linear(config.hidden, config.w_dim),
        )
        self.register_buffer("w_avg", torch.zeros(config.w_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_avg + self.layers(x.reshape(-1, 1, 8, 8) * 2 - 1)


@dataclass(frozen=True)
class IdentityNetConfig:
    """layout: "conv" (3x3 convolutions, max-pooling) or "mlp" (fully connected on the 64 pixels);
    the two share nothing but the embedding size, so one can verify what the other was used to train."""

    layout: Literal["conv", "mlp"] = "conv"
    width: int = 32
    embedding_dim: int = 32

    def __post_init__(self) -> None:
        if self.layout not in ("conv", "mlp"):
            raise ValueError(f"IdentityNetConfig.layout must be 'conv' or 'mlp'; got {self.layout!r}")


class IdentityNet(nn.Module):
    """image N x 1 x 8 x 8 (or N x 64) in [0, 1] -> unit embedding N x embedding_dim; the identity
    similarity of two images is the dot product (cosine) of their embeddings."""

    task_kind: ClassVar[str] = "embedding"

    def __init__(self, config: IdentityNetConfig = IdentityNetConfig()):
        super().__init__()
        self.config = config
        width, size = config.width, config.embedding_dim
        if config.layout == "conv":
            self.layers = nn.Sequential(
                nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
                nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(),
                nn.Flatten(),
                nn.Linear(2 * width * 16, size),
            )
        else:
            self.layers = nn.Sequential(
                nn.Flatten(),
                nn.Linear(64, 4 * width), nn.ReLU(),
                nn.Linear(4 * width, 4 * width), nn.ReLU(),
                nn.Linear(4 * width, size),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional.normalize(self.layers(x.reshape(-1, 1, 8, 8) * 2 - 1), dim=1)
