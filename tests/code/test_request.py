"""Deletion requests: the example is valid; every malformed request is refused naming its field."""

from pathlib import Path

import pytest

from pipelines.request import RequestError, load_request, parse_request
from pipelines.settings import PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "requests" / "examples" / "forget-haze.yaml"


def example_text() -> str:
    return EXAMPLE.read_text()


def test_example_request_is_valid():
    request = load_request(EXAMPLE)
    assert (request.model.name, request.model.alias) == ("restorer", "champion")
    assert request.method.name == "gradient_ascent"
    assert request.thresholds.for_task("restoration", request.model).forget_max_gain_db == 0.5


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda t: t.replace("model: restorer@champion", "model: restorer"), "model"),
        (lambda t: t.replace("request_id: req-0001-forget-haze", "request_id: x"), "request_id"),
        (lambda t: t + "\nsurprise: 1\n", "surprise"),
        (lambda t: t.replace("  rev: HEAD\n", ""), "forget.rev"),
        (lambda t: t.replace("forget_max_gain_db: 0.5", "forget_max_gain_db: 99"), "thresholds.forget_max_gain_db"),
        (lambda t: t.replace("retain_max_drop_db: 0.3", "retain_max_drop_db: lots"), "thresholds.retain_max_drop_db"),
        (lambda t: t.replace("requested_by: dpo@example.org", "requested_by: ''"), "requested_by"),
    ],
)
def test_bad_field_is_named(edit, field):
    with pytest.raises(RequestError) as error:
        parse_request(edit(example_text()))
    assert field in str(error.value)


def test_malformed_yaml_is_refused():
    with pytest.raises(RequestError, match="not valid YAML"):
        parse_request("request_id: [unclosed")


def test_a_list_is_not_a_request():
    with pytest.raises(RequestError, match="expected a mapping"):
        parse_request("- a\n- b\n")


def test_forget_data_may_not_also_be_retained():
    text = example_text().replace(
        "    - data/restoration/train/noise.safetensors", "    - data/restoration/train/haze.safetensors"
    )
    with pytest.raises(RequestError, match="retain sets also listed as forget data"):
        parse_request(text)


def test_missing_file_is_named(tmp_path: Path):
    with pytest.raises(RequestError, match="cannot read request file"):
        load_request(tmp_path / "nope.yaml")


def test_thresholds_apply_to_one_kind_of_model_and_a_misplaced_one_is_named():
    classifier_only = example_text().replace("forget_max_gain_db: 0.5\n  retain_max_drop_db: 0.3", "test_max_drop: 0.02")
    request = parse_request(classifier_only)
    assert request.thresholds.for_task("classification", request.model).test_max_drop == 0.02
    request = parse_request(example_text().replace("retain_max_drop_db: 0.3", "retain_max_drop_db: 0.3\n  test_max_drop: 0.02"))
    with pytest.raises(RequestError, match=r"thresholds\.forget_max_gain_db: applies to restoration models"):
        request.thresholds.for_task("classification", request.model)
    with pytest.raises(RequestError, match=r"thresholds\.test_max_drop: applies to classification models"):
        request.thresholds.for_task("restoration", request.model)


def test_unset_thresholds_take_the_verification_defaults():
    request = parse_request(example_text().replace("  forget_max_gain_db: 0.5\n", ""))
    assert request.thresholds.forget_max_gain_db is None
    assert request.thresholds.for_task("restoration", request.model).forget_max_gain_db == 0.5
