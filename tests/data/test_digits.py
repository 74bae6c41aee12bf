"""The digits sets are deterministic, stratified, and let a request name examples by id."""

import pytest
import torch

from unlearning.data.digits import (
    CLASSES,
    DigitsDataConfig,
    UnknownExampleIdError,
    build_digits_sets,
    class_set_path,
    load_set,
    split_forget,
)
from unlearning.data.pairs import PairSet, decode_arrays, without


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not():
    assert build_digits_sets(DigitsDataConfig(seed=3)) == build_digits_sets(DigitsDataConfig(seed=3))
    assert build_digits_sets(DigitsDataConfig(seed=3)) != build_digits_sets(DigitsDataConfig(seed=4))


def test_train_and_test_are_disjoint_stratified_and_cover_every_example():
    files = build_digits_sets(DigitsDataConfig(train_fraction=0.2))
    train, test = load_set(files, "train"), load_set(files, "test")
    assert set(train.ids.tolist()).isdisjoint(test.ids.tolist())
    assert len(train) + len(test) == 1797
    assert torch.bincount(train.targets.long(), minlength=10).min() >= 34  # ~20% of each class (174-183 each)
    assert 0.0 <= float(train.inputs.min()) and float(train.inputs.max()) <= 1.0


def test_forgetting_a_class_splits_by_label():
    train = load_set(build_digits_sets(DigitsDataConfig()), "train")
    forget, retain = split_forget(train, forget_class=3)
    assert torch.all(forget.targets == 3) and not torch.any(retain.targets == 3)
    assert len(forget) + len(retain) == len(train)


def test_forgetting_samples_by_id_takes_exactly_those():
    train = load_set(build_digits_sets(DigitsDataConfig()), "train")
    wanted = train.ids[[0, 5, 17]].tolist()
    forget, retain = split_forget(train, forget_ids=wanted)
    assert sorted(forget.ids.tolist()) == sorted(wanted)
    assert not set(wanted) & set(retain.ids.tolist())


def test_an_id_that_is_not_in_the_set_is_refused_by_name():
    files = build_digits_sets(DigitsDataConfig())
    test_id = int(load_set(files, "test").ids[0])
    with pytest.raises(UnknownExampleIdError, match=str(test_id)):
        split_forget(load_set(files, "train"), forget_ids=[test_id])


def test_per_class_files_partition_each_split():
    files = build_digits_sets(DigitsDataConfig())
    for split in ("train", "test"):
        whole = load_set(files, split)
        per_class = [PairSet.from_arrays("c", decode_arrays(files[class_set_path(split, k)], "c")[0]) for k in range(CLASSES)]
        assert sum(len(c) for c in per_class) == len(whole)
        assert all(set(c.targets.long().tolist()) == {k} for k, c in enumerate(per_class))


def test_without_drops_exactly_the_named_examples():
    files = build_digits_sets(DigitsDataConfig())
    train = load_set(files, "train")
    eights = PairSet.from_arrays("8", decode_arrays(files[class_set_path("train", 8)], "8")[0])
    rest, dropped = without(train, eights)
    assert dropped == len(eights) and len(rest) == len(train) - len(eights)
    assert 8 not in set(rest.targets.long().tolist())
    assert without(rest, eights) == (rest, 0)
