"""The restorer, plain PyTorch: a residual CNN (not a U-Net). It predicts what to add to the degraded
image: output = input + residual, the same (N, C, H, W) shape, values in [0, 1] when it has learned."""

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class DenoiserConfig:
    channels: int = 3
    width: int = 16
    depth: int = 4


class ResidualDenoiser(nn.Module):
    """`depth` 3x3 convolutions (ReLU between them, the middle ones dilated to see the haze around a pixel)."""

    def __init__(self, channels: int = 3, width: int = 16, depth: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
        for index in range(depth - 2):
            dilation = 2 ** (index + 1)
            layers += [nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation), nn.ReLU()]
        layers.append(nn.Conv2d(width, channels, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, images):
        return images + self.body(images)
