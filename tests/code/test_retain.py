"""The retain set a method trains on never holds a forgotten example (pipelines/flow/retain.py)."""

import pytest
import torch

from pipelines.flow.retain import NothingToRetainError, retain_without_forget
from unlearning.data.pairs import PairSet, concat
from unlearning.methods import create_method


def pairs(name: str, seed: int, count: int = 4) -> PairSet:
    generator = torch.Generator().manual_seed(seed)
    return PairSet(name, torch.rand(count, 1, 4, 4, generator=generator), torch.rand(count, 1, 4, 4, generator=generator))


def test_retain_examples_that_are_also_forgotten_are_dropped():
    forget, kept = pairs("haze", 0), pairs("noise", 1)
    retain = concat([kept, forget.subset(torch.tensor([1, 2]))], "retain")
    result, dropped = retain_without_forget(create_method("finetune", {}), forget, retain)
    assert len(result) == 4 and torch.equal(result.inputs, kept.inputs) and dropped == 2


def test_disjoint_retain_set_is_untouched():
    retain = pairs("noise", 1)
    result, dropped = retain_without_forget(create_method("finetune", {}), pairs("haze", 0), retain)
    assert result is retain and dropped == 0


def test_nothing_left_to_retain_is_refused_for_a_method_that_needs_retain_data():
    forget = pairs("all", 0, count=8)
    with pytest.raises(NothingToRetainError, match="'finetune' needs retain data.*all 3 retain examples"):
        retain_without_forget(create_method("finetune", {}), forget, forget.subset(torch.tensor([0, 3, 5])))


def test_nothing_left_to_retain_is_fine_for_a_method_that_needs_none():
    forget = pairs("all", 0)
    assert retain_without_forget(create_method("gradient_ascent", {}), forget, forget) == (None, 4)
