"""Plug-ins from installed packages, found through Python entry points.

Three groups, each naming objects a package contributes:

    erasure.architectures  an `unlearning.models.Architecture` (model class, typed config, the kind it is)
    erasure.methods        an `unlearning.methods.UnlearningMethod` subclass
    erasure.kinds          a `pipelines.kinds.ModelKind` subclass (what the deletion flow does per kind)

Erasure's own plug-ins are registered the same way (pyproject.toml), so a user's package adds its own with
no edit here. A plug-in that fails to load is kept, with its error, in `broken`: it is reported by name
(`erasure plugins`) and does not take the others down. Code may also `register` an object directly (tests,
a notebook); it then sits beside the installed ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

ARCHITECTURE_GROUP = "erasure.architectures"
METHOD_GROUP = "erasure.methods"
KIND_GROUP = "erasure.kinds"
GROUPS = (ARCHITECTURE_GROUP, METHOD_GROUP, KIND_GROUP)


@dataclass(frozen=True)
class Plugin:
    group: str
    name: str
    value: Any
    source: str  # "package==version (module:attribute)", or "registered in code (module)"


@dataclass(frozen=True)
class BrokenPlugin:
    group: str
    name: str
    source: str
    error: str


@dataclass
class Group:
    loaded: dict[str, Plugin] = field(default_factory=dict)
    broken: dict[str, BrokenPlugin] = field(default_factory=dict)


_GROUPS: dict[str, Group] = {}


def _source(entry: EntryPoint) -> str:
    dist = entry.dist
    package = f"{dist.name}=={dist.version}" if dist is not None else "unknown package"
    return f"{package} ({entry.value})"


def load_group(group: str) -> Group:
    """Every plug-in of `group`, loaded once per process; a failing one is kept in `broken`, not raised."""
    if group not in _GROUPS:
        found = Group()
        _GROUPS[group] = found  # before loading: a plug-in module that looks its own group up must not recurse
        for entry in sorted(entry_points(group=group), key=lambda e: e.name):
            if entry.name in found.loaded:
                continue  # the same name from two places: the first (by name order of the dists) wins
            try:
                value = entry.load()
            except Exception as error:  # any import-time failure of someone else's package
                found.broken[entry.name] = BrokenPlugin(group, entry.name, _source(entry), f"{type(error).__name__}: {error}")
                continue
            found.loaded[entry.name] = Plugin(group, entry.name, value, _source(entry))
    return _GROUPS[group]


def objects(group: str) -> dict[str, Any]:
    """name -> object of every loaded plug-in of `group`."""
    return {name: plugin.value for name, plugin in load_group(group).loaded.items()}


def register(group: str, name: str, value: Any) -> None:
    """Add a plug-in from code (not from an installed package's entry points); replaces one of that name."""
    module = getattr(value, "__module__", None) or type(value).__module__
    load_group(group).loaded[name] = Plugin(group, name, value, f"registered in code ({module})")


def unregister(group: str, name: str) -> None:
    load_group(group).loaded.pop(name, None)


def reload() -> None:
    """Forget what was loaded, so the next lookup reads the installed entry points again (a new install)."""
    _GROUPS.clear()


class PluginMapping(Mapping):
    """A read-only name -> object view of one group, loading it on first use (METHODS, ARCHITECTURES)."""

    def __init__(self, group: str) -> None:
        self.group = group

    def __getitem__(self, name: str) -> Any:
        return load_group(self.group).loaded[name].value

    def __iter__(self) -> Iterator[str]:
        return iter(list(load_group(self.group).loaded))

    def __len__(self) -> int:
        return len(load_group(self.group).loaded)
