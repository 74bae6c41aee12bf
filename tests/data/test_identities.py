"""The identities of the GUIDE scenario: deterministic, held out from every training set, apart from the others."""

import numpy as np

from unlearning.data.digits import DigitsDataConfig, build_digits_sets, set_path
from unlearning.data.identities import OTHERS_PATH, build_identity_sets, identity_path
from unlearning.data.pairs import decode_arrays


def _arrays(files, path):
    return decode_arrays(files[path], path)[0]


def test_the_identity_sets_are_the_same_bytes_every_time():
    assert build_identity_sets(DigitsDataConfig()) == build_identity_sets(DigitsDataConfig())


def test_each_identity_is_one_test_digit_no_training_set_holds():
    digits = build_digits_sets(DigitsDataConfig())
    train_ids = set(_arrays(digits, set_path("train"))["ids"].tolist())
    test_ids = set(_arrays(digits, set_path("test"))["ids"].tolist())
    files = build_identity_sets(DigitsDataConfig())
    classes = []
    for index in range(3):
        identity = _arrays(files, identity_path(index))
        assert identity["inputs"].shape == (1, 64)
        assert int(identity["ids"][0]) in test_ids and int(identity["ids"][0]) not in train_ids
        classes.append(int(identity["targets"][0]))
    assert len(set(classes)) == 3  # three different "people", of different digits


def test_the_others_hold_every_class_and_no_identity():
    files = build_identity_sets(DigitsDataConfig())
    others = _arrays(files, OTHERS_PATH)
    assert np.bincount(others["targets"], minlength=10).tolist() == [2] * 10
    identity_ids = {int(_arrays(files, identity_path(i))["ids"][0]) for i in range(3)}
    assert identity_ids.isdisjoint(others["ids"].tolist())
