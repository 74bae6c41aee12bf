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


def test_every_method_of_issue_3_is_registered():
    expected = {"finetune", "gradient_ascent", "neggrad_plus", "random_labels", "salun", "scrub", "ssd", "adversarial_ga"}
    assert expected <= set(METHODS)


def test_methods_declare_whether_they_need_retain_data():
    assert METHODS["finetune"].needs_retain and METHODS["scrub"].needs_retain and METHODS["ssd"].needs_retain
    assert not METHODS["gradient_ascent"].needs_retain and not METHODS["adversarial_ga"].needs_retain


def test_a_method_for_classifiers_only_is_refused_for_restoration_at_selection():
    from unlearning.methods.base import InapplicableMethodError

    with pytest.raises(InapplicableMethodError, match="'random_labels' does not apply to restoration tasks"):
        create_method("random_labels", {}, task_kind="restoration")
    assert create_method("random_labels", {}, task_kind="classification").params.steps == 200


def test_ssd_has_no_step_params():
    with pytest.raises(MethodParamsError, match="selection_weighting"):
        create_method("ssd", {"steps": 10})


@pytest.mark.parametrize("params", [{"around": "test"}, {"attack": "cw"}, {"epsilon": 0.0}, {"refresh_every": 0}])
def test_adversarial_params_are_checked(params):
    with pytest.raises(MethodParamsError, match=next(iter(params))):
        create_method("adversarial_ga", params)
