"""A small style-based GAN for 8x8 digits: mapping z -> w, synthesis w -> image, and its discriminator.

Sized for one CPU core: with the defaults (47k generator parameters) one D+G step at batch 64 takes
~11 ms and recognisable digits of every class come in 2 000-4 000 steps. The layout follows StyleGAN2's
naming as far as the unlearning methods need it: `mapping`, `synthesis` (whose `convs` are what
Adapt-then-Unlearn's EWC covers), `discriminator`, and a `w_avg` buffer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn


@dataclass(frozen=True)
class GanConfig:
    """latent_dim / w_dim: sizes of z and w; mapping_layers: depth of the z -> w MLP; channels: width of
    the synthesis network; discriminator_channels: width of the discriminator's first layer (doubled
    once). The synthesis starts at 4x4 and upsamples once to image_size 8."""

    latent_dim: int = 32
    w_dim: int = 32
    mapping_layers: int = 2
    channels: int = 32
    image_size: int = 8
    discriminator_channels: int = 32

    def __post_init__(self) -> None:
        if self.image_size != 8:
            raise ValueError(f"GanConfig.image_size must be 8 (the synthesis upsamples 4x4 once); got {self.image_size}")


class Mapping(nn.Module):
    """z -> w; z is normalised to unit second moment first, as in StyleGAN."""

    def __init__(self, config: GanConfig):
        super().__init__()
        layers: list[nn.Module] = []
        width = config.latent_dim
        for _ in range(config.mapping_layers):
            layers += [nn.Linear(width, config.w_dim), nn.LeakyReLU(0.2)]
            width = config.w_dim
        self.layers = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)
        return self.layers(z)


class Synthesis(nn.Module):
    """w -> image N x 1 x 8 x 8 in [0, 1]: a 4x4 feature map from w, three 3x3 convolutions (one after a
    nearest-neighbour upsample to 8x8), a 1x1 convolution to one channel and a sigmoid."""

    def __init__(self, config: GanConfig):
        super().__init__()
        self.channels = config.channels
        self.initial = nn.Linear(config.w_dim, config.channels * 4 * 4)
        self.convs = nn.ModuleList([
            nn.Conv2d(config.channels, config.channels, 3, padding=1),
            nn.Conv2d(config.channels, config.channels, 3, padding=1),
            nn.Conv2d(config.channels, config.channels, 3, padding=1),
        ])
        self.to_image = nn.Conv2d(config.channels, 1, 1)
        self.activation = nn.LeakyReLU(0.2)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    def features(self, w: torch.Tensor) -> torch.Tensor:
        """The last feature map before `to_image`, N x channels x 8 x 8 (GUIDE's feature loss compares
        these, as the paper's compares EG3D's triplanes, the representation before rendering)."""
        x = self.activation(self.initial(w)).reshape(-1, self.channels, 4, 4)
        x = self.activation(self.convs[0](x))
        x = self.upsample(x)
        x = self.activation(self.convs[1](x))
        return self.activation(self.convs[2](x))

    def render(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.to_image(features))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.render(self.features(w))


class Discriminator(nn.Module):
    """image N x 1 x 8 x 8 (or N x 64) in [0, 1] -> realness logit N."""

    def __init__(self, config: GanConfig):
        super().__init__()
        width = config.discriminator_channels
        self.layers = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),  # 4x4
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),  # 2x2
            nn.Flatten(),
            nn.Linear(2 * width * 4, 1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # Centred inputs train D faster than [0, 1] ones.
        return self.layers(images.reshape(-1, 1, 8, 8) * 2 - 1).squeeze(1)


class DigitsGAN(nn.Module):
    """One module holding a whole GAN, so one set of registered weights is enough to unlearn it.

    After `train_gan` the `mapping` and `synthesis` weights are the generator's EMA (the copy worth
    sampling from) and `discriminator` is the trained D (Adapt-then-Unlearn and the fine-tuning
    baselines train G against it). `forward(z)` is the generator only: z (N x latent_dim) -> images
    N x 1 x 8 x 8 in [0, 1], with no data-dependent control flow, so it exports to ONNX with a dynamic
    batch. `w_avg` is the running mean of mapping outputs seen in training (for truncation and for
    inverting images into w).
    """

    task_kind: ClassVar[str] = "generation"

    def __init__(self, config: GanConfig = GanConfig()):
        super().__init__()
        self.config = config
        self.mapping = Mapping(config)
        self.synthesis = Synthesis(config)
        self.discriminator = Discriminator(config)
        self.register_buffer("w_avg", torch.zeros(config.w_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.synthesis(self.mapping(z))

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Same as `forward`: images N x 1 x 8 x 8 in [0, 1]."""
        return self(z)

    def generator_parameters(self) -> list[nn.Parameter]:
        """The generator's parameters (mapping + synthesis), without the discriminator's."""
        return [*self.mapping.parameters(), *self.synthesis.parameters()]

    def synthesis_convolutions(self) -> list[nn.Parameter]:
        """The parameters EWC's Fisher covers: the synthesis convolutions only (the paper's `generator.convs`)."""
        return list(self.synthesis.convs.parameters())
