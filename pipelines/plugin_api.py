"""What a kind of model from another package may import: the stable surface of the deletion flow.

A kind is a `ModelKind` subclass listed under the entry point group `erasure.kinds` of its package; a kind
that reads data files like Erasure's restoration and classification kinds subclasses `FileKind`. Everything
else in `pipelines` is internal and may change between releases (docs/plugins.md).
"""

from pipelines.audit.record import Evidence, MetricEvidence
from pipelines.kinds.base import (
    Assessment,
    Figures,
    ForgetTarget,
    KindError,
    KindThresholds,
    ModelKind,
    Strict,
    check_metrics,
    evaluated,
)
from pipelines.kinds.files import FileData, FileKind, ForgetFiles

__all__ = ["Assessment", "Evidence", "FileData", "FileKind", "Figures", "ForgetFiles", "ForgetTarget", "KindError",
           "KindThresholds", "MetricEvidence", "ModelKind", "Strict", "check_metrics", "evaluated"]
