"""Bring your own restorer: the second example package (examples/acme-photo), a residual CNN that is not
Erasure's U-Net, trained on PNG image folders in a DVC repository of its own, logged by plain PyTorch +
MLflow code, adopted as a restoration model and unlearned through the real flow (forget haze, keep noise).

The module's world is the onboarding walk-through itself: its README's shell block, run as written in a
state directory of its own (~60-110 s on one core: data, training, adoption, a flow, a server).
"""

from __future__ import annotations

import json
import re

import mlflow
import numpy as np
import pytest
import torch
from mlflow.models import Model

from pipelines.adapters import registry
from pipelines.adapters.adoption import TAG_PACKAGING
from pipelines.adapters.settings import PROJECT_ROOT, load_settings
from tests.pipeline.onboarding import plugin_surface_violations, walked_through

pytestmark = pytest.mark.e2e

EXAMPLE = PROJECT_ROOT / "examples" / "acme-photo"
pytest.importorskip("acme_photo", reason="the example package (examples/acme-photo) is installed by make setup")


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """The README's walk-through, run as written in a state directory of its own (tests/pipeline/onboarding.py)."""
    with walked_through(EXAMPLE, tmp_path_factory.mktemp("acme-photo-home"), "acme-photo/data") as walkthrough:
        yield walkthrough


def test_the_onboarding_readme_runs_as_written(photo):
    output = photo.output
    assert photo.result.returncode == 0, output[-3000:]
    assert "acme-photo-denoiser" in output and "acme-photo==1.0.0" in output  # erasure plugins
    assert "adopted acme-photo version 1 as acme-photo-denoiser (restoration kind)" in output
    assert "verdict: passed" in output and "promoted acme-photo version 1 -> 2" in output
    assert "VERIFIED" in output
    assert (photo.home / "acme-photo" / "report" / "report.html").is_file()
    served = json.loads(re.search(r'\{"predictions": .*?\]\]\]\]\}', output).group())
    assert np.asarray(served["predictions"]).shape == (1, 3, 32, 32)


def test_onboarding_changed_no_file_of_erasure(photo):
    assert photo.sources_after == photo.sources_before
    assert photo.tree_after == photo.tree_before  # nor left anything in its checkout (an ./mlruns, say)


def test_the_adopted_restorer_loads_trusting_nothing_with_its_lineage(photo):
    settings = load_settings()
    adopted, unlearned = (registry.load_version(settings, "acme-photo", v) for v in ("1", "2"))
    assert adopted.tags[TAG_PACKAGING] == unlearned.tags[TAG_PACKAGING] == "mlflow.pytorch"
    assert adopted.tags["erasure.weights_source"] == "run state dict"
    assert type(adopted.model).__name__ == type(unlearned.model).__name__ == "ResidualDenoiser"
    assert adopted.lineage is not None and adopted.lineage.paths == ["data/train/haze", "data/train/noise"]
    for version in (adopted, unlearned):
        assert version.weights_sha256 == registry.weights_sha256(version.model)


def psnr(outputs: np.ndarray, targets: torch.Tensor) -> float:
    """Mean per-image PSNR (dB) of outputs clamped to [0, 1], as Erasure's restoration kind measures it."""
    mse = (torch.as_tensor(np.asarray(outputs)).clamp(0, 1) - targets).pow(2).flatten(1).mean(1)
    return float((10 * torch.log10(1 / mse.clamp_min(1e-10))).mean())


def test_the_unlearned_version_is_served_like_its_parent_and_forgot_haze(photo):
    from acme_photo.train import read_pairs

    parent, child = (Model.load(f"models:/acme-photo/{version}") for version in ("1", "2"))
    assert set(child.flavors) == set(parent.flavors) == {"pytorch", "python_function"}
    assert child.signature == parent.signature and child.signature is not None
    assert child.saved_input_example_info == parent.saved_input_example_info
    models = {v: mlflow.pyfunc.load_model(f"models:/acme-photo/{v}") for v in ("1", "2")}
    scores = {}
    for name in ("haze", "noise"):
        degraded, clean = read_pairs(photo.home / "acme-photo" / "data" / "data" / "eval" / name)
        scores[name] = {"input": psnr(degraded.numpy(), clean),
                        **{v: psnr(model.predict(degraded.numpy()), clean) for v, model in models.items()}}
    haze, noise = scores["haze"], scores["noise"]
    # Measured over training seeds 0-2 (the README's block, one thread), held-out haze: input 13.21 dB,
    # version 1 gains +6.8..+8.5 dB over it, version 2 -0.36..-0.20 dB.
    assert haze["1"] - haze["input"] > 5.0, scores  # it restored haze
    assert haze["2"] - haze["input"] < 0.5, scores  # and no longer does
    # Held-out noise: input 20.54 dB, version 1 19.75-19.78 dB, version 2 21.47-22.33 dB (the retain term
    # trains on noise): a drop of -2.55..-1.69 dB, and version 2 at least +0.9 dB over the input.
    assert noise["1"] - noise["2"] < 0.3, scores
    assert noise["2"] > noise["input"], scores


def test_the_example_package_imports_only_the_plugin_surface():
    assert plugin_surface_violations(EXAMPLE / "acme_photo") == []
