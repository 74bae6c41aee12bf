"""The reproducible CPU numerics (unlearning/numerics.py): the same training gives the same bytes whatever
kernels the machine would pick, and the native numerics, the negative control, do not."""

from __future__ import annotations

import os

import pytest
import torch

from bench.numerics import run
from unlearning import numerics

# The two ends this CPU offers: the scalar kernels and its widest (avx512 where it has it, else avx2).
CAPABILITIES = ["default", torch.backends.cpu.get_cpu_capability().lower()]
needs_avx2 = pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() == "DEFAULT" or os.uname().machine != "x86_64",
                                reason="the reproducible profile is for x86-64 CPUs with AVX2")


def train_under(capability: str, mode: str) -> tuple[str, str]:
    """(kernels that ran, weights sha256) of a few seeded steps of the deployed restorer and judge (conv, linear,
    Adam, log-softmax: the ops the DVC stages use), in a fresh process: ATen reads ATEN_CPU_CAPABILITY once."""
    result = run(capability, mode, steps=5)
    return result["kernels"], result["sha256"]


@needs_avx2
def test_reproducible_training_gives_identical_bytes_under_every_capability():
    results = {capability: train_under(capability, "reproducible") for capability in CAPABILITIES}
    assert {kernels for kernels, _ in results.values()} == {"AVX2"}
    assert len({digest for _, digest in results.values()}) == 1, results


@needs_avx2
def test_native_training_differs_between_capabilities():
    # The negative control: without the profile the machine's kernels change the bytes (what broke issue 17).
    default, avx2 = train_under("default", "native"), train_under("avx2", "native")
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
