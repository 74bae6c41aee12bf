"""Methods are chosen by name with typed params; mistakes list what exists."""

import pytest

from unlearning.methods import METHODS, create_method
from unlearning.methods.base import MethodParamsError, UnknownMethodError


def test_gradient_ascent_and_finetune_are_registered():
    assert {"gradient_ascent", "finetune"} <= set(METHODS)


def test_unknown_method_lists_registered_ones():
    with pytest.raises(UnknownMethodError) as error:
        create_method("forget_everything", {})
    assert "gradient_ascent" in str(error.value)


def test_unknown_param_lists_allowed_ones():
    with pytest.raises(MethodParamsError) as error:
        create_method("gradient_ascent", {"stepz": 3})
    assert "stepz" in str(error.value) and "retain_weight" in str(error.value)


@pytest.mark.parametrize("params", [{"steps": 0}, {"learning_rate": -1.0}, {"bound": "sometimes"}])
def test_out_of_range_param_is_refused(params):
    with pytest.raises(MethodParamsError, match=next(iter(params))):
        create_method("gradient_ascent", params)


def test_params_are_typed():
    method = create_method("gradient_ascent", {"steps": "12"})
    assert method.params.steps == 12 and method.params.bound == "do_nothing"
