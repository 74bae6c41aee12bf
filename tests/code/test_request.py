"""Deletion requests: the example is valid; every malformed request is refused naming its field."""

from pathlib import Path

import pytest

from pipelines.adapters.settings import PROJECT_ROOT
from pipelines.flow.request import RequestError, load_request, parse_request
from pipelines.kinds import KindError, kind_named

EXAMPLE = PROJECT_ROOT / "requests" / "examples" / "forget-haze.yaml"


def example_text() -> str:
    return EXAMPLE.read_text()


def test_example_request_is_valid():
    request = load_request(EXAMPLE)
    assert (request.model.name, request.model.alias) == ("restorer", "champion")
    assert request.method.name == "gradient_ascent"
    assert kind_named("restoration").thresholds(request).forget_max_gain_db == 0.5


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda t: t.replace("model: restorer@champion", "model: restorer"), "model"),
        (lambda t: t.replace("request_id: req-0001-forget-haze", "request_id: x"), "request_id"),
        (lambda t: t + "\nsurprise: 1\n", "surprise"),
        (lambda t: t.replace("  rev: HEAD\n", "  rev: HEAD\n  records: [1, 2]\n"), "exactly one of path, records, manifest"),
        (lambda t: t.replace("  rev: HEAD\n", "  rev: HEAD\n  records: []\n"), "forget.records"),
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
    assert kind_named("classification").thresholds(request).test_max_drop == 0.02
    request = parse_request(example_text().replace("retain_max_drop_db: 0.3", "retain_max_drop_db: 0.3\n  test_max_drop: 0.02"))
    with pytest.raises(KindError, match=r"thresholds\.forget_max_gain_db: applies to restoration models"):
        kind_named("classification").thresholds(request)
    with pytest.raises(KindError, match=r"thresholds\.test_max_drop: applies to classification models"):
        kind_named("restoration").thresholds(request)


def test_unset_thresholds_take_the_verification_defaults():
    request = parse_request(example_text().replace("  forget_max_gain_db: 0.5\n", ""))
    assert "forget_max_gain_db" not in request.thresholds
    assert kind_named("restoration").thresholds(request).forget_max_gain_db == 0.5


def test_an_unknown_threshold_is_named_with_the_known_ones():
    with pytest.raises(RequestError, match=r"thresholds\.forget_harder: unknown threshold; known thresholds: \[.*forget_max_gain_db"):
        parse_request(example_text().replace("retain_max_drop_db: 0.3", "forget_harder: 1"))


def test_a_forget_section_of_no_known_form_lists_the_forms():
    text = example_text().replace("  path: data/restoration/train/haze.safetensors\n", "  file: data/x.safetensors\n")
    with pytest.raises(RequestError, match=r"forget: .*cannot tell which kind of forget target.*`path:` for data files"):
        parse_request(text)


def test_a_file_request_for_a_kind_that_forgets_otherwise_is_refused_naming_both_forms():
    class Other(kind_named("restoration").forget_form):
        form_key = "other"
        form_summary = "something else"

    kind = type(kind_named("restoration"))()
    kind.forget_form = Other
    with pytest.raises(KindError, match=r"forget: restorer@champion is a restoration model, which forgets something else"):
        kind.check_request(load_request(EXAMPLE))


GENERATOR_EXAMPLE = PROJECT_ROOT / "requests" / "examples" / "forget-digit-seven-generator.yaml"


def test_generator_example_request_is_a_feature_target_with_generation_thresholds():
    request = load_request(GENERATOR_EXAMPLE)
    assert request.forget.feature.class_ == 7 and request.forget.feature.judge == "digits-judge@champion"
    assert request.retain is None
    assert kind_named("generation").thresholds(request).forget_max_share == 0.01
    kind_named("generation").check_request(request)
    with pytest.raises(KindError, match=r"restorer.*forgets data files"):
        kind_named("restoration").check_request(request.model_copy(update={"model": request.model.model_copy(update={"name": "restorer"})}))


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda t: t.replace("    class: 7\n", "    class: 7\n    colour: red\n"), "forget.feature.colour"),
        (lambda t: t.replace("class: 7", "class: -1"), "forget.feature.class"),
        (lambda t: t.replace("judge: digits-judge@champion", "judge: digits-judge"), "forget.feature.judge"),
        (lambda t: t.replace("negatives: 300", "negatives: 2"), "forget.samples.negatives"),
        (lambda t: t.replace("forget_max_share: 0.01", "forget_max_share: 2"), "thresholds.forget_max_share"),
    ],
)
def test_generator_forget_target_names_a_bad_field(edit, field):
    with pytest.raises(RequestError) as error:
        parse_request(edit(GENERATOR_EXAMPLE.read_text()))
    assert field in str(error.value)
