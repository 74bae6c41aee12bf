"""The kinds of model the deletion flow serves, one plug-in module each (see base.py).

A kind is a `ModelKind` subclass that its package lists under the entry point group `erasure.kinds`
(Erasure's own four in pyproject.toml): a new kind is one new module and one line there, and nothing else
lists the kinds. The flow, the request schema and the report look kinds up by the name a model's
architecture declares. Importing this package imports no kind; the first lookup loads the installed ones.
"""

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

__all__ = ["KINDS", "Assessment", "Figures", "ForgetTarget", "KindError", "ModelKind", "UnknownKindError", "kind_named",
           "kind_of", "kind_of_record", "register_kind"]
