"""The kinds of model the deletion flow serves, one plug-in module each (see base.py).

Importing this package registers every kind; the flow, the request schema and the report look kinds up
here by the name a model's architecture declares.
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
    register_kind,
)
from pipelines.kinds import classification, generation, restoration  # noqa: F401, E402  (registers the kinds)

__all__ = ["KINDS", "Assessment", "Figures", "ForgetTarget", "KindError", "ModelKind", "UnknownKindError", "kind_named",
           "kind_of", "register_kind"]
