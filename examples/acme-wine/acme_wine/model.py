"""The classifier, plain PyTorch: 13 measurements of a wine -> logits over its 3 cultivars."""

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class WineConfig:
    in_features: int = 13
    hidden: int = 32
    classes: int = 3


class WineClassifier(nn.Module):
    def __init__(self, in_features: int = 13, hidden: int = 32, classes: int = 3) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                    nn.Linear(hidden, classes))

    def forward(self, features):
        return self.layers(features)
