"""Forgetting haze with no retain data at all (issue 20 §1) on the tiny restorer: the forget set and the model only.

Margins from seeds 0-2 of the tiny world (tests/conftest.make_world) under ATEN_CPU_CAPABILITY default, avx2 and
avx512 (the spread is written beside each assertion); the tests run seed 0.
"""

import pytest

from tests.conftest import CPU
from tests.model.test_gradient_ascent import scores
from unlearning.methods import UnlearningProblem, create_method
from unlearning.methods.base import MethodParamsError

NO_RETAIN = {"steps": 60, "learning_rate": 3e-4}


def unlearn_without_retain(world, name, params):
    model = world.fresh_model()
    create_method(name, params).run(UnlearningProblem(model, world.pairs("train", "haze"), None, CPU), show_progress=False)
    return scores(model, world)


def test_synthetic_teacher_forgets_haze_and_keeps_noise_and_rain_without_retain_data(tiny_world):
    """The default forget objective, a regression onto the do-nothing output (the hazy input itself)."""
    before = scores(tiny_world.model, tiny_world)
    after = unlearn_without_retain(tiny_world, "synthetic_teacher", NO_RETAIN)
    # Haze drop measured 5.37-5.77 / 2.39 / 5.81-5.82 dB on seeds 0-2 over capabilities (of a 5.7-6.4 dB gain).
    assert before["haze"].psnr - after["haze"].psnr >= 2.0
    # Haze gain over the input measured +1.04 (default) / +1.16 (avx2, avx512) on seed 0, +2.77 and +1.18..1.29
    # on seeds 1 and 2: on this tiny plain U-Net (no prompt blocks, 16 px patches) the target settles short of
    # the do-nothing output; the demo restorer reaches it (bench/results/no_retain.md). Margin above seed 1.
    assert after["haze"].psnr - after["haze"].input_psnr <= 3.0
    # Kept drops measured -2.37..-0.75 dB over seeds and capabilities (negative: better than before); threshold 0.3.
    for kept in ("noise", "rain"):
        assert before[kept].psnr - after[kept].psnr <= 0.3


def test_synthetic_teacher_with_bounded_ascent_reaches_the_do_nothing_output(tiny_world):
    before = scores(tiny_world.model, tiny_world)
    after = unlearn_without_retain(tiny_world, "synthetic_teacher", {**NO_RETAIN, "forget_objective": "bounded_ascent"})
    # Haze gain over the input measured 0.01 / 0.25 / -0.19 dB on seeds 0-2 (seed 0: -0.02 under
    # `default`, 0.01 under avx2 and avx512); the demo threshold is 0.5.
    assert after["haze"].psnr - after["haze"].input_psnr <= 0.5
    assert after["haze"].psnr < before["haze"].psnr - 3.0
    # Kept drops measured -2.40..-0.43 dB over seeds and capabilities (negative: better than before; with
    # teacher_weight 1 seed 1 lost 0.5 dB of rain, hence the default 3); the demo threshold is 0.3.
    for kept in ("noise", "rain"):
        assert before[kept].psnr - after[kept].psnr <= 0.3


def test_control_bounded_ascent_without_retain_data_loses_what_it_should_keep(tiny_world):
    """The negative control: the same ascent with no teacher term damages the kept degradations."""
    before = scores(tiny_world.model, tiny_world)
    after = unlearn_without_retain(tiny_world, "gradient_ascent", {**NO_RETAIN, "retain_weight": 0.0})
    # Worst kept drop measured 1.37 / 3.08 / 6.68 dB on seeds 0-2 (seed 0: 4.28 under `default`); margin 1.0.
    assert max(before[kept].psnr - after[kept].psnr for kept in ("noise", "rain")) > 1.0


def test_an_unknown_degradation_to_keep_is_refused_naming_it():
    with pytest.raises(MethodParamsError, match=r"unknown degradations \['snow'\]"):
        create_method("synthetic_teacher", {"keep_degradations": ["noise", "snow"]})
