"""The reproducible CPU numerics (unlearning/numerics.py): the same training gives the same bytes whatever
kernels the machine would pick, and the native numerics, the negative control, do not."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from unlearning import numerics

# Training a conv net and a linear net, a few dozen seeded steps each: the ops the DVC stages use (conv,
# linear, batch statistics, Adam, log-softmax). Run in a fresh process: ATen reads ATEN_CPU_CAPABILITY once.
TRAIN_AND_HASH = textwrap.dedent("""
    import hashlib, sys
    import torch
    from unlearning import numerics
    if sys.argv[1] == "reproducible":
        numerics.enter(numerics.REPRODUCIBLE)
    from unlearning.models import build_model
    torch.manual_seed(0)
    models = [build_model("digits-judge-cnn", {"channels": 8}), build_model("restorer-unet", {"width": 8, "levels": 2})]
    digest = hashlib.sha256()
    for model in models:
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        for step in range(20):
            if model.task_kind == "classification":
                inputs = torch.rand(32, 1, 8, 8)
                loss = torch.nn.functional.cross_entropy(model(inputs), torch.randint(10, (32,)))
            else:
                inputs = torch.rand(8, 3, 16, 16)
                loss = (model(inputs) - inputs.flip(-1)).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        for tensor in model.state_dict().values():
            digest.update(tensor.contiguous().numpy().tobytes())
    print(numerics.current().capability, digest.hexdigest())
""")

# The two ends this CPU offers: the scalar kernels and its widest (avx512 where it has it, else avx2).
CAPABILITIES = ["default", torch.backends.cpu.get_cpu_capability().lower()]
needs_avx2 = pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() == "DEFAULT" or os.uname().machine != "x86_64",
                                reason="the reproducible profile is for x86-64 CPUs with AVX2")


def train_under(capability: str, mode: str, tmp_path) -> tuple[str, str]:
    script = tmp_path / "train_and_hash.py"
    script.write_text(TRAIN_AND_HASH)
    environment = {**os.environ, "ATEN_CPU_CAPABILITY": capability, "OMP_NUM_THREADS": "1"}
    environment.pop(numerics.RESTARTED_MARKER, None)
    environment.pop("MKL_CBWR", None)
    # Generous: ~5 s idle (import + 60 steps); no timing is asserted.
    done = subprocess.run([sys.executable, str(script), mode], capture_output=True, text=True, env=environment, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    kernels, digest = done.stdout.split()[-2:]
    return kernels, digest


@needs_avx2
def test_reproducible_training_gives_identical_bytes_under_every_capability(tmp_path):
    results = {capability: train_under(capability, "reproducible", tmp_path) for capability in CAPABILITIES}
    assert {kernels for kernels, _ in results.values()} == {"AVX2"}
    assert len({digest for _, digest in results.values()}) == 1, results


@needs_avx2
def test_native_training_differs_between_capabilities(tmp_path):
    # The negative control: without the profile the machine's kernels change the bytes (what broke issue 17).
    default, avx2 = train_under("default", "native", tmp_path), train_under("avx2", "native", tmp_path)
    assert default[0] == "DEFAULT" and avx2[0] == "AVX2"
    assert default[1] != avx2[1]


def test_recorded_numerics_round_trip_and_name_their_differences():
    running = numerics.current()
    recorded = numerics.Numerics.from_record(running.as_record())
    assert recorded == running
    assert numerics.REPRODUCIBLE.as_record()["profile"] == "reproducible"
    other = numerics.Numerics(**{**recorded.__dict__, "threads": recorded.threads + 1})
    assert other.differences(running) == [f"threads: {recorded.threads + 1} != {recorded.threads}"]
    assert not other.same_kernels(running)


def test_the_profile_environment_pins_every_library_that_picks_kernels():
    environment = numerics.REPRODUCIBLE.environment()
    assert environment["ATEN_CPU_CAPABILITY"] == "avx2" and environment["MKL_CBWR"] == "COMPATIBLE,STRICT"
    assert environment["OMP_NUM_THREADS"] == environment["MKL_NUM_THREADS"] == "1"
    assert numerics.started_in(numerics.REPRODUCIBLE, environment)
    assert not numerics.started_in(numerics.REPRODUCIBLE, {**environment, "ATEN_CPU_CAPABILITY": "avx512"})
