"""Unlearning methods by name. Importing this package registers every method module in it."""

import importlib
import pkgutil

from unlearning.methods.base import METHODS, UnlearningMethod, UnlearningProblem, create_method

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["METHODS", "UnlearningMethod", "UnlearningProblem", "create_method"]
