"""Great Expectations checks on a forget set before any weight is touched.

Each example becomes one row of facts (hashes, shape, dtype, value range, non-finite count), never
its pixels, so GX results can be kept in the audit trail without leaking the data. What the rows must
say (`SetSchema`) comes from the request's evaluation set and the kind of model (pipelines/kinds/): uint8
image pairs for a restorer, [0, 1] features with class labels for a classifier.

A table (pipelines/kinds/formats.py) is checked before it is decoded, on its own columns: they exist, hold
no null or NaN, and ids are unique (`validate_table`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd


class ForgetSetValidationError(ValueError):
    """The forget set broke at least one expectation; the message names each one."""


class TableValidationError(ForgetSetValidationError):
    """A table the request reads (forget, retain or evaluation) broke an expectation of its columns: one is
    missing, holds nulls or NaN, or the id column repeats an id. The message names the file, each
    expectation and column, and counts; never a value."""


@dataclass(frozen=True)
class ValidationSummary:
    success: bool
    evaluated: int
    failures: list[str]
    forget_sets_in_run: int = 1  # >1: validated in one GX run with other coalesced requests' sets

    def as_record(self) -> dict:
        record = {"suite": SUITE_NAME, "success": self.success, "expectations": self.evaluated, "failures": self.failures}
        if self.forget_sets_in_run > 1:
            record["forget_sets_in_run"] = self.forget_sets_in_run
        return record


SUITE_NAME = "forget-set"


@dataclass(frozen=True)
class SetSchema:
    """What every forget example must look like to be the model's kind of data."""

    input_shape: str
    target_shape: str
    dtype: str  # "<input dtype>/<target dtype>"
    input_range: tuple[float, float]
    target_range: tuple[float, float]

    @classmethod
    def like(cls, evaluation: dict[str, np.ndarray], target_range: tuple[float, float] | None = None) -> "SetSchema":
        """The schema of the request's evaluation set: pixels in [0, 255] (uint8) or [0, 1]; targets in
        `target_range` (a kind's own, e.g. class labels), or the inputs' range when None."""
        inputs, targets = evaluation["inputs"], evaluation["targets"]
        input_range = (0.0, 255.0) if inputs.dtype == np.uint8 else (0.0, 1.0)
        return cls(_shape(inputs[0]), _shape(targets[0]), f"{inputs.dtype}/{targets.dtype}", input_range,
                   target_range or input_range)


@dataclass(frozen=True)
class ForgetSet:
    """One request's forget examples and what they must look like: the input of one validation."""

    inputs: np.ndarray
    targets: np.ndarray
    schema: SetSchema
    evaluation_inputs: np.ndarray


def _shape(example: np.ndarray) -> str:
    return "x".join(map(str, np.shape(example))) or "scalar"


def example_hashes(arrays: np.ndarray) -> list[str]:
    return [hashlib.sha256(np.ascontiguousarray(example).tobytes()).hexdigest() for example in arrays]


def describe_examples(inputs: np.ndarray, targets: np.ndarray) -> pd.DataFrame:
    """One row per example: identifying hashes and summary statistics, no content."""
    rows = []
    for example_input, example_target in zip(inputs, targets):
        input_values = np.asarray(example_input, dtype=np.float64).ravel()
        target_values = np.asarray(example_target, dtype=np.float64).ravel()
        finite_input, finite_target = input_values[np.isfinite(input_values)], target_values[np.isfinite(target_values)]
        rows.append(
            {
                "input_sha256": hashlib.sha256(np.ascontiguousarray(example_input).tobytes()).hexdigest(),
                "example_sha256": hashlib.sha256(
                    np.ascontiguousarray(example_input).tobytes() + np.ascontiguousarray(example_target).tobytes()
                ).hexdigest(),
                "input_shape": _shape(example_input),
                "target_shape": _shape(example_target),
                "dtype": f"{np.asarray(example_input).dtype}/{np.asarray(example_target).dtype}",
                "min_value": float(finite_input.min()) if finite_input.size else float("nan"),
                "max_value": float(finite_input.max()) if finite_input.size else float("nan"),
                "target_min": float(finite_target.min()) if finite_target.size else float("nan"),
                "target_max": float(finite_target.max()) if finite_target.size else float("nan"),
                "nonfinite_count": int(input_values.size - finite_input.size + target_values.size - finite_target.size),
            }
        )
    columns = ["input_sha256", "example_sha256", "input_shape", "target_shape", "dtype", "min_value", "max_value",
               "target_min", "target_max", "nonfinite_count"]
    return pd.DataFrame(rows, columns=columns)


@lru_cache(maxsize=1)
def _gx_context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("erasure").add_dataframe_asset("forget_set")
    return context, asset.add_batch_definition_whole_dataframe("whole")


def build_suite(schema: SetSchema, evaluation_input_hashes: list[str]):
    """The forget-set suite: not empty, no duplicates, the model's shapes and dtypes, values in range,
    nothing non-finite, and no example that is also used to evaluate the model."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    (low, high), (target_low, target_high) = schema.input_range, schema.target_range
    return gx.ExpectationSuite(
        name=SUITE_NAME,
        expectations=[
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToBeUnique(column="example_sha256"),
            gxe.ExpectColumnValuesToBeInSet(column="input_shape", value_set=[schema.input_shape]),
            gxe.ExpectColumnValuesToBeInSet(column="target_shape", value_set=[schema.target_shape]),
            gxe.ExpectColumnValuesToBeInSet(column="dtype", value_set=[schema.dtype]),
            gxe.ExpectColumnValuesToBeBetween(column="nonfinite_count", min_value=0, max_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="min_value", min_value=low, max_value=high),
            gxe.ExpectColumnValuesToBeBetween(column="max_value", min_value=low, max_value=high),
            gxe.ExpectColumnValuesToBeBetween(column="target_min", min_value=target_low, max_value=target_high),
            gxe.ExpectColumnValuesToBeBetween(column="target_max", min_value=target_low, max_value=target_high),
            gxe.ExpectColumnValuesToNotBeInSet(column="input_sha256", value_set=evaluation_input_hashes),
        ],
    )


def validate_forget_set(
    inputs: np.ndarray, targets: np.ndarray, schema: SetSchema, evaluation_inputs: np.ndarray
) -> ValidationSummary:
    """Run the suite; raise ForgetSetValidationError naming every failed expectation."""
    summary = _run_suite(describe_examples(inputs, targets), schema, evaluation_inputs)
    if not summary.success:
        raise ForgetSetValidationError(f"forget set failed {len(summary.failures)} expectation(s): " + "; ".join(summary.failures))
    return summary


def validate_forget_sets(forget_sets: list[ForgetSet]) -> list[ValidationSummary | ForgetSetValidationError]:
    """Each set's outcome as `validate_forget_set` gives it alone, in order, with one GX run for the sets
    that share a schema and an evaluation set (a GX run costs ~0.1 s however few its rows).

    Every expectation of the suite but the row count holds for a set when it holds for a union that
    contains it (values checked row by row; unique in the union, unique in each part), so when the union
    of non-empty sets passes, each set passes alone with the same summary. When the union fails, each of
    its sets is validated alone: the one that broke an expectation is refused with its own failures.
    """
    outcomes: list[ValidationSummary | ForgetSetValidationError | None] = [None] * len(forget_sets)
    unions: dict[tuple, list[int]] = {}
    for index, forget_set in enumerate(forget_sets):
        if len(forget_set.inputs):  # an empty set passes every row-wise check: only its own run refuses it
            key = (forget_set.schema, tuple(example_hashes(forget_set.evaluation_inputs)))
            unions.setdefault(key, []).append(index)
    for members in unions.values():
        if len(members) < 2:
            continue
        first = forget_sets[members[0]]
        frame = pd.concat([describe_examples(forget_sets[i].inputs, forget_sets[i].targets) for i in members], ignore_index=True)
        union = _run_suite(frame, first.schema, first.evaluation_inputs)
        if union.success:
            for i in members:
                outcomes[i] = ValidationSummary(True, union.evaluated, [], forget_sets_in_run=len(members))
    for index, forget_set in enumerate(forget_sets):
        if outcomes[index] is None:
            try:
                outcomes[index] = validate_forget_set(forget_set.inputs, forget_set.targets, forget_set.schema,
                                                      forget_set.evaluation_inputs)
            except ForgetSetValidationError as error:
                outcomes[index] = error
    return outcomes


def build_table_suite(columns: list[str], id_column: str | None, present: set[str]):
    """The table suite: every column the request reads exists and holds no null or NaN; ids are unique.
    Value expectations are added only for present columns (GX errors on a missing one)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    expectations = [gxe.ExpectTableRowCountToBeBetween(min_value=1)]
    expectations += [gxe.ExpectColumnToExist(column=column) for column in columns]
    expectations += [gxe.ExpectColumnValuesToNotBeNull(column=column) for column in columns if column in present]
    if id_column is not None and id_column in present:
        expectations.append(gxe.ExpectColumnValuesToBeUnique(column=id_column))
    return gx.ExpectationSuite(name=TABLE_SUITE_NAME, expectations=expectations)


TABLE_SUITE_NAME = "table-columns"


def validate_table(frame: pd.DataFrame, columns: list[str], id_column: str | None, source: str) -> ValidationSummary:
    """Run the table suite on the table as read (`columns`: features, label and id); raise
    TableValidationError naming `source` and every failed expectation (NaN counts as null in pandas)."""
    _, batch_definition = _gx_context()
    suite = build_table_suite(columns, id_column, set(frame.columns))
    result = batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(suite)
    failures = _failures(result)
    if not result.success:
        raise TableValidationError(f"{source}: table failed {len(failures)} expectation(s): " + "; ".join(failures))
    return ValidationSummary(success=True, evaluated=len(result.results), failures=[])


def _run_suite(frame: pd.DataFrame, schema: SetSchema, evaluation_inputs: np.ndarray) -> ValidationSummary:
    _, batch_definition = _gx_context()
    suite = build_suite(schema, example_hashes(evaluation_inputs))
    result = batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(suite)
    failures = _failures(result)
    return ValidationSummary(success=bool(result.success), evaluated=len(result.results), failures=failures)


def _failures(result) -> list[str]:
    """Each failed expectation as `type(column=...): unexpected N` (counts only: GX's lists of unexpected
    values are private data and never leave here)."""
    failures = []
    for outcome in result.results:
        if outcome.success:
            continue
        config = outcome.expectation_config
        column = config.kwargs.get("column")
        detail = outcome.result.get("unexpected_count", outcome.result.get("observed_value"))
        what = "unexpected" if "unexpected_count" in outcome.result else "observed"
        if config.type == "expect_column_to_exist":
            what, detail = "missing", "from the table"
        failures.append(f"{config.type}" + (f"(column={column})" if column else "") + f": {what} {detail}")
    return failures
