"""A kind of model is one plug-in: the flow finds it from the model, and nothing else names it."""


import pytest
import torch

from pipelines.adapters.settings import PROJECT_ROOT
from pipelines.flow.request import RequestError, parse_request
from pipelines.kinds import KINDS, ForgetTarget, KindError, ModelKind, kind_named, kind_of
from pipelines.kinds import base as kinds_base
from unlearning import plugins
from unlearning.models import build_model

# The modules a request travels through; none may switch on a kind's name.
KIND_BLIND = ["pipelines/flow/deletion.py", "pipelines/operations/coalesce.py", "pipelines/flow/request.py", "pipelines/adapters/validation.py",
              "pipelines/operations/inbox.py", "pipelines/audit/report.py", "pipelines/audit/figures.py", "pipelines/adapters/export.py"]


@pytest.mark.parametrize("path", KIND_BLIND)
def test_the_request_path_never_names_a_kind(path):
    source = (PROJECT_ROOT / path).read_text()
    for name in KINDS:
        assert f'"{name}"' not in source and f"'{name}'" not in source, f"{path} names the kind {name!r}"


@pytest.mark.parametrize("architecture, config, kind", [
    ("restorer-unet", {"width": 4, "levels": 1}, "restoration"),
    ("digits-mlp", {"hidden": 8, "depth": 1}, "classification"),
    ("digits-gan", {}, "generation"),
])
def test_the_kind_comes_from_the_architecture(architecture, config, kind):
    assert kind_of(build_model(architecture, config)).name == kind


def _example(name: str):
    return parse_request((PROJECT_ROOT / "requests/examples" / name).read_text())


@pytest.mark.parametrize("example, kind", [
    ("forget-digit-seven-generator.yaml", "generation"),
    ("forget-identity.yaml", "identity"),
])
def test_a_generator_has_two_kinds_and_the_forget_form_picks_one(example, kind):
    request = _example(example)
    chosen = kind_of(build_model("digits-gan", {}), request.forget)
    assert chosen.name == kind
    chosen.check_request(request)


def test_a_forget_form_no_kind_of_the_model_serves_falls_back_to_the_primary_kind_which_names_it():
    request = _example("forget-haze.yaml")  # data files: a restorer's form
    chosen = kind_of(build_model("digits-gan", {}), request.forget)
    assert chosen.name == "generation"
    with pytest.raises(KindError, match="generation model, which forgets a generator's feature"):
        chosen.check_request(request)


def test_a_kind_serving_another_kinds_architectures_is_not_picked_for_other_models():
    identity = _example("forget-identity.yaml")
    assert kind_of(build_model("digits-mlp", {"hidden": 8, "depth": 1}), identity.forget).name == "classification"
    with pytest.raises(KindError, match="one identity's image"):
        kind_of(build_model("digits-mlp", {"hidden": 8, "depth": 1}), identity.forget).check_request(identity)


class _Text(ForgetTarget):
    form_key = "sentences"
    form_summary = "sentences of a language model"
    sentences: list[str]


class _LanguageThresholds(kinds_base.KindThresholds):
    forget_max_perplexity_ratio: float | None = None

    def verify_thresholds(self):
        return self


def test_a_new_kind_with_its_own_forget_form_and_thresholds_needs_no_other_module():
    class LanguageKind(ModelKind):
        name = "language"
        forget_form = _Text
        Thresholds = _LanguageThresholds
        uses_retain = False
        pull_data = provenance = forget_set = forget_examples = problem = assess = export_inputs = None

    kinds_base.register_kind(LanguageKind)
    try:
        text = (PROJECT_ROOT / "requests/examples/forget-digit-seven-generator.yaml").read_text()
        start, end = text.index("forget:"), text.index("method:")
        text = text[:start] + "forget:\n  sentences: [a, b]\n" + text[end:]
        text = text.replace("  forget_max_share: 0.01\n  forget_min_reduction: 0.9\n  kept_class_min_share: 0.5\n",
                            "  forget_max_perplexity_ratio: 2.0\n")
        request = parse_request(text)
        assert isinstance(request.forget, _Text)
        kind_named("language").check_request(request)
        with pytest.raises(KindError, match="forgets a generator's feature"):
            kind_named("generation").check_request(request)
    finally:
        plugins.unregister(plugins.KIND_GROUP, "language")
    with pytest.raises(RequestError, match="cannot tell which kind of forget target"):
        parse_request(text)


def test_a_shared_evaluation_computes_a_models_result_on_a_set_once():
    from pipelines.kinds.base import evaluated, shared_evaluation

    calls = []
    first, second = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    inputs = torch.arange(6.0).reshape(3, 2)

    def result(model, tensors):
        return evaluated(model, tensors, "cpu", lambda: calls.append(model) or len(calls))

    assert [result(first, (inputs,)), result(first, (inputs,))] == [1, 2]  # outside: every time
    with shared_evaluation():
        assert result(first, (inputs,)) == result(first, (inputs.clone(),)) == 3  # same content: once
        assert result(second, (inputs,)) == 4 and result(first, (inputs + 1,)) == 5  # another model or set
    assert result(first, (inputs,)) == 6
