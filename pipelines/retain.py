"""The retain set a method trains on: the request's retain sets without any example that is also forgotten.

Retaining an example that is also in the forget set would train it back in, so such examples are dropped
(matched by content: the sha256 of each example's input and target). When nothing is left, the forget set
covers the whole training set the request names; a method that needs retain data cannot run on that, and
the request is refused rather than unlearned with a silently missing retain term.
"""

from __future__ import annotations

import hashlib

import torch

from unlearning.data.pairs import PairSet
from unlearning.methods import UnlearningMethod
from unlearning.methods.base import UnlearningError


class NothingToRetainError(UnlearningError):
    """Every retain example is also in the forget set, and the method needs retain data."""


def example_digests(pairs: PairSet) -> list[str]:
    """One sha256 per example, over its input and target bytes."""
    inputs, targets = pairs.inputs.detach().cpu().contiguous(), pairs.targets.detach().cpu().contiguous()
    return [
        hashlib.sha256(inputs[i].numpy().tobytes() + targets[i].numpy().tobytes()).hexdigest() for i in range(len(pairs))
    ]


def retain_without_forget(method: UnlearningMethod, forget: PairSet, retain: PairSet | None) -> PairSet | None:
    """`retain` less the examples that are also in `forget`; refuses when that leaves nothing for a method
    that needs retain data."""
    if retain is None:
        return None
    forgotten = set(example_digests(forget))
    kept = [index for index, digest in enumerate(example_digests(retain)) if digest not in forgotten]
    if len(kept) == len(retain):
        return retain
    if not kept and method.needs_retain:
        raise NothingToRetainError(
            f"method {method.name!r} needs retain data, but all {len(retain)} retain examples are also in the "
            f"forget set ({len(forget)} examples): the forget set is the whole training set, nothing is left to retain"
        )
    return retain.subset(torch.tensor(kept, dtype=torch.long)) if kept else None
