"""DDP unlearning launched by torchrun: 2 CPU processes over gloo take the same steps as one process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from pipelines.adapters import registry
from tests.conftest import CPU
from unlearning.data.restoration import set_path
from unlearning.methods import UnlearningProblem, create_method

pytestmark = [pytest.mark.integration]

METHOD = "gradient_ascent"
PARAMS = {"steps": 30, "learning_rate": 3e-4, "batch_size": 16, "seed": 3}


def test_two_rank_ddp_matches_one_process(tiny_world, tmp_path):
    model_dir = tmp_path / "model"
    registry.write_model_files(tiny_world.model, "restorer-unet", model_dir)
    sets = {}
    for name in ("haze", "noise", "rain"):
        sets[name] = tmp_path / f"{name}.safetensors"
        sets[name].write_bytes(tiny_world.files[set_path("train", name)])
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "pipelines.production.distributed", "--model-dir", str(model_dir), "--forget", str(sets["haze"]),
        "--retain", str(sets["noise"]), str(sets["rain"]), "--method", METHOD, "--params", json.dumps(PARAMS),
        "--out", str(tmp_path / "ddp"),
    ]
    launched = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert launched.returncode == 0, launched.stdout[-2000:] + launched.stderr[-3000:]
    assert json.loads((tmp_path / "ddp" / "run.json").read_text())["world_size"] == 2

    model = tiny_world.fresh_model()
    method = create_method(METHOD, PARAMS)
    retain = tiny_world.pairs("train", "noise"), tiny_world.pairs("train", "rain")
    from unlearning.data.pairs import concat

    problem = UnlearningProblem(model=model, forget=tiny_world.pairs("train", "haze"), retain=concat(list(retain), "retain"), device=CPU)
    method.run(problem, show_progress=False)

    ddp_weights = load_file(tmp_path / "ddp" / registry.WEIGHTS_FILE)
    single_weights = model.state_dict()
    original = tiny_world.model.state_dict()
    moved = max((single_weights[k] - original[k]).abs().max().item() for k in original)
    difference = max((ddp_weights[k] - single_weights[k]).abs().max().item() for k in single_weights)
    assert moved > 1e-3, "unlearning did not change the weights, so the comparison would prove nothing"
    assert difference < 1e-4 * max(1.0, moved), f"DDP and one process differ by {difference} (weights moved {moved})"
