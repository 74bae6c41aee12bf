"""The kinds of model the deletion flow serves, one plug-in module each (see base.py).

Importing this package imports every module in it, which registers each kind (`@register_kind`): a new
kind is one new file here, and nothing else lists the kinds. The flow, the request schema and the
report look kinds up by the name a model's architecture declares.
"""

import importlib
import pkgutil

from pipelines.kinds.base import (
    KINDS,
    Assessment,
    Figures,
    ForgetTarget,
    KindError,
    ModelKind,
    UnknownKindError,
    kind_named,
    kind_of,
    kind_of_record,
    register_kind,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["KINDS", "Assessment", "Figures", "ForgetTarget", "KindError", "ModelKind", "UnknownKindError", "kind_named",
           "kind_of", "kind_of_record", "register_kind"]
