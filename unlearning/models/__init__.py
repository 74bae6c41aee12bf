"""Model architectures by name, built from a plain config dict so weights + config reload anywhere."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from torch import nn

from unlearning.models.classifier import ClassifierConfig, DigitsClassifier
from unlearning.models.digits_cnn import DigitsFeatureNet, DigitsJudge, FeatureNetConfig, JudgeConfig
from unlearning.models.gan import DigitsGAN, GanConfig
from unlearning.models.identity import EncoderConfig, IdentityNet, IdentityNetConfig, InversionEncoder
from unlearning.models.restorer import Restorer, RestorerConfig

ARCHITECTURES: dict[str, tuple[type[nn.Module], type]] = {
    "restorer-unet": (Restorer, RestorerConfig),
    "digits-mlp": (DigitsClassifier, ClassifierConfig),
    "digits-gan": (DigitsGAN, GanConfig),
    "digits-judge-cnn": (DigitsJudge, JudgeConfig),
    "digits-feature-net": (DigitsFeatureNet, FeatureNetConfig),
    "digits-gan-encoder": (InversionEncoder, EncoderConfig),
    "digits-identity-net": (IdentityNet, IdentityNetConfig),
}


class UnknownArchitectureError(ValueError):
    pass


def build_model(architecture: str, config: dict[str, Any]) -> nn.Module:
    """A freshly initialised model of a named architecture."""
    if architecture not in ARCHITECTURES:
        raise UnknownArchitectureError(f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}")
    model_class, config_class = ARCHITECTURES[architecture]
    return model_class(config_class(**config))


def describe(architecture: str, model: nn.Module) -> dict[str, Any]:
    """The JSON-able description `build_model` needs to rebuild `model`."""
    return {"architecture": architecture, "config": asdict(model.config)}
