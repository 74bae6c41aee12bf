"""Great Expectations checks on a forget set before any weight is touched.

Each example becomes one row of facts (hashes, shape, dtype, value range, non-finite count), never
its pixels, so GX results can be kept in the audit trail without leaking the data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd


class ForgetSetValidationError(ValueError):
    """The forget set broke at least one expectation; the message names each one."""


@dataclass(frozen=True)
class ValidationSummary:
    success: bool
    evaluated: int
    failures: list[str]

    def as_record(self) -> dict:
        return {"suite": SUITE_NAME, "success": self.success, "expectations": self.evaluated, "failures": self.failures}


SUITE_NAME = "forget-set"


def example_hashes(arrays: np.ndarray) -> list[str]:
    return [hashlib.sha256(np.ascontiguousarray(example).tobytes()).hexdigest() for example in arrays]


def describe_examples(inputs: np.ndarray, targets: np.ndarray) -> pd.DataFrame:
    """One row per example: identifying hashes and summary statistics, no content."""
    rows = []
    for example_input, example_target in zip(inputs, targets):
        values = np.concatenate([example_input.ravel(), example_target.ravel()]).astype(np.float64)
        finite = values[np.isfinite(values)]
        rows.append(
            {
                "input_sha256": hashlib.sha256(np.ascontiguousarray(example_input).tobytes()).hexdigest(),
                "example_sha256": hashlib.sha256(
                    np.ascontiguousarray(example_input).tobytes() + np.ascontiguousarray(example_target).tobytes()
                ).hexdigest(),
                "input_shape": "x".join(map(str, example_input.shape)),
                "target_shape": "x".join(map(str, example_target.shape)),
                "dtype": f"{example_input.dtype}/{example_target.dtype}",
                "min_value": float(finite.min()) if finite.size else float("nan"),
                "max_value": float(finite.max()) if finite.size else float("nan"),
                "nonfinite_count": int(values.size - finite.size),
            }
        )
    columns = ["input_sha256", "example_sha256", "input_shape", "target_shape", "dtype", "min_value", "max_value"]
    return pd.DataFrame(rows, columns=columns + ["nonfinite_count"])


@lru_cache(maxsize=1)
def _gx_context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("erasure").add_dataframe_asset("forget_set")
    return context, asset.add_batch_definition_whole_dataframe("whole")


def build_suite(expected_shape: tuple[int, ...], evaluation_input_hashes: list[str]):
    """The forget-set suite: not empty, no duplicates, the model's shape and dtype, pixels in [0, 255],
    nothing non-finite, and no example that is also used to evaluate the model."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    shape = "x".join(map(str, expected_shape))
    return gx.ExpectationSuite(
        name=SUITE_NAME,
        expectations=[
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToBeUnique(column="example_sha256"),
            gxe.ExpectColumnValuesToBeInSet(column="input_shape", value_set=[shape]),
            gxe.ExpectColumnValuesToBeInSet(column="target_shape", value_set=[shape]),
            gxe.ExpectColumnValuesToBeInSet(column="dtype", value_set=["uint8/uint8"]),
            gxe.ExpectColumnValuesToBeBetween(column="nonfinite_count", min_value=0, max_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="min_value", min_value=0, max_value=255),
            gxe.ExpectColumnValuesToBeBetween(column="max_value", min_value=0, max_value=255),
            gxe.ExpectColumnValuesToNotBeInSet(column="input_sha256", value_set=evaluation_input_hashes),
        ],
    )


def validate_forget_set(
    inputs: np.ndarray, targets: np.ndarray, expected_shape: tuple[int, ...], evaluation_inputs: np.ndarray
) -> ValidationSummary:
    """Run the suite; raise ForgetSetValidationError naming every failed expectation."""
    _, batch_definition = _gx_context()
    frame = describe_examples(inputs, targets)
    suite = build_suite(expected_shape, example_hashes(evaluation_inputs))
    result = batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(suite)
    failures = []
    for outcome in result.results:
        if outcome.success:
            continue
        config = outcome.expectation_config
        column = config.kwargs.get("column")
        detail = outcome.result.get("unexpected_count", outcome.result.get("observed_value"))
        what = "unexpected" if "unexpected_count" in outcome.result else "observed"
        failures.append(f"{config.type}" + (f"(column={column})" if column else "") + f": {what} {detail}")
    summary = ValidationSummary(success=bool(result.success), evaluated=len(result.results), failures=failures)
    if not summary.success:
        raise ForgetSetValidationError(f"forget set failed {len(failures)} expectation(s): " + "; ".join(failures))
    return summary
