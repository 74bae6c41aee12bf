"""The retain set a method trains on: the request's retain sets without any example that is also forgotten.

Retaining an example that is also in the forget set would train it back in, so such examples are dropped
(matched by content: the sha256 of each example's input and target bytes). When nothing is left, the forget set
covers the whole training set the request names; a method that needs retain data cannot run on that, and
the request is refused rather than unlearned with a silently missing retain term.
"""

from __future__ import annotations

from unlearning.data.pairs import PairSet, without
from unlearning.methods import UnlearningMethod
from unlearning.methods.base import UnlearningError


class NothingToRetainError(UnlearningError):
    """Every retain example is also in the forget set, and the method needs retain data."""


def retain_without_forget(
    method: UnlearningMethod, forget: PairSet, retain: PairSet | None
) -> tuple[PairSet | None, int]:
    """`retain` less the examples that are also in `forget`, and how many were dropped; refuses when that
    leaves nothing for a method that needs retain data."""
    if retain is None:
        return None, 0
    kept, dropped = without(retain, forget)
    if len(kept) == 0 and method.needs_retain:
        raise NothingToRetainError(
            f"method {method.name!r} needs retain data, but all {len(retain)} retain examples are also in the "
            f"forget set ({len(forget)} examples): the forget set is the whole training set, nothing is left to retain"
        )
    return (kept if len(kept) else None), dropped
