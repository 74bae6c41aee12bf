"""Great Expectations refuses broken forget sets and names the expectation that failed."""

import numpy as np
import pytest

from pipelines.adapters.validation import (
    ForgetSet,
    ForgetSetValidationError,
    SetSchema,
    ValidationSummary,
    validate_forget_set,
    validate_forget_sets,
)
from unlearning.data.digits import DigitsDataConfig, build_digits_sets, class_set_path
from unlearning.data.pairs import decode_arrays
from unlearning.data.restoration import set_path


@pytest.fixture(scope="module")
def sets(tiny_world):
    forget, _ = decode_arrays(tiny_world.files[set_path("train", "haze")], "forget")
    evaluation, _ = decode_arrays(tiny_world.files[set_path("eval", "haze")], "eval")
    return forget, evaluation


def check(inputs, targets, evaluation):
    return validate_forget_set(inputs, targets, SetSchema.like(evaluation), evaluation["inputs"])


def test_clean_forget_set_passes(sets):
    forget, evaluation = sets
    summary = check(forget["inputs"], forget["targets"], evaluation)
    assert summary.success and summary.evaluated == 11


@pytest.mark.parametrize(
    "corrupt, expectation",
    [
        (lambda i, t: (i[:0], t[:0]), "expect_table_row_count_to_be_between"),
        (lambda i, t: (np.concatenate([i, i[:2]]), np.concatenate([t, t[:2]])), "expect_column_values_to_be_unique"),
        (lambda i, t: (i[:, :, :8, :8], t[:, :, :8, :8]), "expect_column_values_to_be_in_set(column=input_shape)"),
        (lambda i, t: (i.astype(np.float32), t), "expect_column_values_to_be_in_set(column=dtype)"),
        (
            lambda i, t: (np.where(np.arange(i.size).reshape(i.shape) == 5, np.nan, i.astype(np.float32)), t),
            "expect_column_values_to_be_between(column=nonfinite_count)",
        ),
        (lambda i, t: (i.astype(np.int16) * 3, t), "expect_column_values_to_be_between(column=max_value)"),
    ],
    ids=["empty", "duplicates", "wrong-shape", "wrong-dtype", "nan", "out-of-range"],
)
def test_broken_forget_set_is_refused_naming_the_expectation(sets, corrupt, expectation):
    forget, evaluation = sets
    inputs, targets = corrupt(forget["inputs"], forget["targets"])
    with pytest.raises(ForgetSetValidationError) as error:
        check(inputs, targets, evaluation)
    assert expectation in str(error.value)


def test_forget_set_overlapping_the_evaluation_set_is_refused(sets):
    forget, evaluation = sets
    inputs = np.concatenate([forget["inputs"], evaluation["inputs"][:3]])
    targets = np.concatenate([forget["targets"], evaluation["targets"][:3]])
    with pytest.raises(ForgetSetValidationError, match=r"not_be_in_set\(column=input_sha256\): unexpected 3"):
        check(inputs, targets, evaluation)


def test_failure_message_holds_counts_not_pixels(sets):
    forget, evaluation = sets
    inputs = forget["inputs"].astype(np.int16) + 1000
    with pytest.raises(ForgetSetValidationError) as error:
        check(inputs, forget["targets"], evaluation)
    assert "1000" not in str(error.value) and "unexpected" in str(error.value)


@pytest.fixture(scope="module")
def digit_sets():
    files = build_digits_sets(DigitsDataConfig())
    forget, _ = decode_arrays(files[class_set_path("train", 8)], "forget")
    evaluation, _ = decode_arrays(files[class_set_path("test", 8)], "eval")
    return forget, evaluation, SetSchema.like(evaluation, target_range=(0.0, 9.0))


def test_a_class_of_digits_passes_as_classifier_data(digit_sets):
    forget, evaluation, schema = digit_sets
    assert validate_forget_set(forget["inputs"], forget["targets"], schema, evaluation["inputs"]).success


@pytest.mark.parametrize(
    "corrupt, expectation",
    [
        (lambda i, t: (i, t + 5), "column=target_max"),
        (lambda i, t: (i * 16, t), "column=max_value"),
        (lambda i, t: (i.reshape(-1, 8, 8), t), "column=input_shape"),
    ],
    ids=["label-out-of-range", "unscaled-features", "wrong-shape"],
)
def test_broken_classifier_data_is_refused(digit_sets, corrupt, expectation):
    forget, evaluation, schema = digit_sets
    inputs, targets = corrupt(forget["inputs"], forget["targets"])
    with pytest.raises(ForgetSetValidationError, match=expectation):
        validate_forget_set(inputs, targets, schema, evaluation["inputs"])


def forget_set(inputs, targets, evaluation):
    return ForgetSet(inputs, targets, SetSchema.like(evaluation), evaluation["inputs"])


def test_sets_validated_together_get_the_summary_each_gets_alone(sets):
    forget, evaluation = sets
    parts = [forget_set(forget["inputs"][n::3], forget["targets"][n::3], evaluation) for n in range(3)]
    together = validate_forget_sets(parts)
    alone = [validate_forget_set(p.inputs, p.targets, p.schema, p.evaluation_inputs) for p in parts]
    assert [(s.success, s.evaluated, s.failures) for s in together] == [(s.success, s.evaluated, s.failures) for s in alone]
    assert [s.forget_sets_in_run for s in together] == [3, 3, 3]
    assert together[0].as_record()["forget_sets_in_run"] == 3 and "forget_sets_in_run" not in alone[0].as_record()


def test_a_broken_set_among_others_is_refused_alone_with_its_own_failures(sets):
    forget, evaluation = sets
    inputs, targets = forget["inputs"], forget["targets"]
    nan = np.where(np.arange(inputs[:4].size).reshape(inputs[:4].shape) == 5, np.nan, inputs[:4].astype(np.float32))
    parts = [
        forget_set(inputs[4:8], targets[4:8], evaluation),
        forget_set(nan, targets[:4], evaluation),
        forget_set(inputs[:0], targets[:0], evaluation),  # empty: passes the union's row-wise checks, not its own
        forget_set(inputs[8:12], targets[8:12], evaluation),
    ]
    outcomes = validate_forget_sets(parts)
    assert [type(o).__name__ for o in outcomes] == ["ValidationSummary", "ForgetSetValidationError", "ForgetSetValidationError", "ValidationSummary"]
    assert "column=nonfinite_count" in str(outcomes[1]) and "column=dtype" in str(outcomes[1])
    assert "expect_table_row_count_to_be_between" in str(outcomes[2]) and "nonfinite" not in str(outcomes[2])
    assert outcomes[0].success and outcomes[3].success


def test_sets_that_repeat_each_others_examples_each_pass_alone(sets):
    forget, evaluation = sets
    same = forget_set(forget["inputs"][:4], forget["targets"][:4], evaluation)
    assert all(isinstance(o, ValidationSummary) and o.forget_sets_in_run == 1 for o in validate_forget_sets([same, same]))
