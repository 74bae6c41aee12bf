"""Model architectures by name, built from a plain config dict so weights + config reload anywhere.

An architecture is an `Architecture`: the model class, its typed config (a dataclass or a pydantic model)
and the task kind it is (restoration, classification, generation, ...: what the deletion flow does with it).
Installed packages contribute architectures through the entry point group `erasure.architectures`, Erasure's
own included (pyproject.toml), so a user's model needs no edit here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from unlearning import plugins


@dataclass(frozen=True)
class Architecture:
    """How to build a model of this architecture from a JSON-able config.

    `construct="config"` calls `model_class(config_class(**config))` (Erasure's own models keep their config
    as `model.config`); `construct="kwargs"` calls `model_class(**config)` after checking it against
    `config_class`, for a plain PyTorch module whose constructor takes keyword arguments.
    """

    name: str
    model_class: type[nn.Module]
    config_class: type
    task_kind: str
    construct: Literal["config", "kwargs"] = "config"

    def typed_config(self, config: dict[str, Any]) -> Any:
        return self.config_class(**config)

    def build(self, config: dict[str, Any]) -> nn.Module:
        typed = self.typed_config(config)
        model = self.model_class(typed) if self.construct == "config" else self.model_class(**config_dict(typed))
        if getattr(model, "task_kind", None) != self.task_kind:
            model.task_kind = self.task_kind  # a user's class need not know which kind the flow treats it as
        if not hasattr(model, "config"):
            model.config = typed
        return model


def config_dict(config: Any) -> dict[str, Any]:
    """A typed config (dataclass or pydantic model) as the plain dict it was built from."""
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    if hasattr(config, "model_dump"):
        return config.model_dump()
    raise TypeError(f"a config must be a dataclass or a pydantic model, got {type(config).__name__}")


# The installed architectures (entry point group `erasure.architectures`), by name.
ARCHITECTURES: Mapping[str, Architecture] = plugins.PluginMapping(plugins.ARCHITECTURE_GROUP)


class UnknownArchitectureError(ValueError):
    pass


def architecture_named(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        broken = plugins.load_group(plugins.ARCHITECTURE_GROUP).broken.get(name)
        if broken is not None:
            raise UnknownArchitectureError(f"architecture {name!r} is installed but failed to load ({broken.source}): {broken.error}")
        raise UnknownArchitectureError(f"unknown architecture {name!r}; known: {sorted(ARCHITECTURES)}")
    architecture = ARCHITECTURES[name]
    if not isinstance(architecture, Architecture):
        raise UnknownArchitectureError(f"architecture {name!r} is a {type(architecture).__name__}, not an unlearning.models.Architecture")
    return architecture


def build_model(architecture: str, config: dict[str, Any]) -> nn.Module:
    """A freshly initialised model of a named architecture."""
    return architecture_named(architecture).build(config)


def describe(architecture: str, model: nn.Module) -> dict[str, Any]:
    """The JSON-able description `build_model` needs to rebuild `model`."""
    return {"architecture": architecture, "config": config_dict(model.config)}
