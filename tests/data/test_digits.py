"""The digits sets are deterministic, stratified, and let a request name examples by id."""

import pytest
import torch

from unlearning.data.digits import DigitsDataConfig, UnknownExampleIdError, build_digits_sets, load_set, split_forget


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
