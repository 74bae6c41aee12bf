"""What an architecture or an unlearning method from another package may import: the stable surface.

Everything else in `unlearning` is internal and may change between releases. A plug-in is listed under the
entry point group `erasure.architectures` (an `Architecture`) or `erasure.methods` (an `UnlearningMethod`
subclass) of its own package; docs/plugins.md walks through both.
"""

from unlearning.data.pairs import PairSet
from unlearning.methods.base import (
    DivergenceError,
    InapplicableMethodError,
    MethodParams,
    UnlearningError,
    UnlearningMethod,
    UnlearningProblem,
)
from unlearning.models import Architecture
from unlearning.tasks import Task

__all__ = ["Architecture", "DivergenceError", "InapplicableMethodError", "MethodParams", "PairSet", "Task",
           "UnlearningError", "UnlearningMethod", "UnlearningProblem"]
