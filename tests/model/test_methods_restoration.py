"""Every method forgets haze on the tiny restorer and keeps noise and rain (seed 0 of the tiny world).

Measured on seeds 0-2 (2-core CPU) with the params below; the tiny model is under-trained, so retained
PSNR improves under most methods (negative drops) and the interesting number is the haze one.
"""

import pytest
import torch

from tests.conftest import CPU
from tests.model.test_gradient_ascent import scores
from unlearning.data.pairs import concat
from unlearning.methods import UnlearningProblem, create_method
from unlearning.methods.base import InapplicableMethodError

# method, params, measured haze gain over the input after (original: 5.1-7.2 dB), measured retain drops
CASES = [
    ("finetune", dict(steps=60, learning_rate=3e-4)),  # gain 0.25 / -0.07 / 2.17 dB; drops <= -0.78
    ("neggrad_plus", dict(steps=30, learning_rate=1e-4)),  # gain -0.02 / 1.27 / 2.87; drops <= -0.64
    ("salun", dict(steps=60, learning_rate=3e-4)),  # gain -0.20 / -0.69 / -0.25; drops <= -0.43 (measured before the saliency-mask fix, which let every weight move; passes after it on seed 0)
    ("scrub", dict(steps=60, learning_rate=3e-4, max_steps=30)),  # gain 0.13 / -0.20 / 3.13; drops <= -0.95
    ("adversarial_ga", dict(steps=60, learning_rate=3e-4)),  # eps 0.1: gain 0.91 / 0.14 / 0.41; drops <= -0.87
    # FGSM reusing each adversarial batch 5 steps: bench --quick seeds 0-2 left haze 13.31 +- 0.42 dB (original
    # 19.75 +- 1.34) with kept test PSNR improving; PGD every step cost 2.5x for no measured benefit.
    ("adversarial_ga", dict(steps=60, learning_rate=3e-4, around="retain", epsilon=0.03, attack="fgsm", refresh_every=5)),
]


def unlearn(world, name, params):
    model = world.fresh_model()
    retain = concat([world.pairs("train", "noise"), world.pairs("train", "rain")], "retain")
    create_method(name, params).run(UnlearningProblem(model, world.pairs("train", "haze"), retain, CPU), show_progress=False)
    return model


@pytest.mark.parametrize("name,params", CASES, ids=[f"{n}-{p.get('around', '')}" for n, p in CASES])
def test_method_forgets_haze_and_keeps_the_rest(tiny_world, name, params):
    before = scores(tiny_world.model, tiny_world)
    after = scores(unlearn(tiny_world, name, params), tiny_world)
    # Worst measured seed left haze 3.8 dB below the original; margin 3 dB.
    assert after["haze"].psnr < before["haze"].psnr - 3.0
    for kept in ("noise", "rain"):
        assert before[kept].psnr - after[kept].psnr <= 0.3


def test_ssd_dampens_only_weights_far_more_important_to_haze(tiny_world):
    """SSD at the paper's defaults does not reliably forget haze on the tiny restorer (haze gain over
    the input measured 1.21 / -0.52 / 5.28 dB on seeds 0-2, 6.1 dB in a pytest worker; rain drops up to
    2.35 dB), so this asserts what it promises: selected weights shrink, all others stay."""
    from unlearning.methods.ssd import fisher_importance

    model = tiny_world.fresh_model()
    retain = concat([tiny_world.pairs("train", "noise"), tiny_world.pairs("train", "rain")], "retain")
    problem = UnlearningProblem(model, tiny_world.pairs("train", "haze"), retain, CPU)
    forget_importance = fisher_importance(problem, problem.forget, 64)
    retain_importance = fisher_importance(problem, problem.retain, 64)
    create_method("ssd", {}).run(problem, show_progress=False)
    changed = selected = 0
    for (name, after), before in zip(model.named_parameters(), tiny_world.model.parameters()):
        chosen = forget_importance[name] > 10 * retain_importance[name]
        assert torch.equal(after[~chosen], before[~chosen])
        assert torch.all(after[chosen].abs() <= before[chosen].abs() + 1e-7)
        changed += int((after != before).sum())
        selected += int(chosen.sum())
    assert 0 < changed <= selected


def test_random_labels_is_refused_for_restoration(tiny_world):
    with pytest.raises(InapplicableMethodError, match="'random_labels' does not apply to restoration"):
        create_method("random_labels", {}, task_kind="restoration")
    problem = UnlearningProblem(tiny_world.fresh_model(), tiny_world.pairs("train", "haze"), None, CPU)
    with pytest.raises(InapplicableMethodError, match="random_labels"):
        create_method("random_labels", {"steps": 2}).run(problem, show_progress=False)


def test_ascent_stop_rule_ends_the_run_once_held_out_haze_is_forgotten(tiny_world):
    model = tiny_world.fresh_model()
    retain = concat([tiny_world.pairs("train", "noise"), tiny_world.pairs("train", "rain")], "retain")
    problem = UnlearningProblem(
        model, tiny_world.pairs("train", "haze"), retain, CPU, check=tiny_world.pairs("eval", "haze")
    )
    method = create_method("gradient_ascent", {"steps": 150, "learning_rate": 3e-4, "stop_check_every": 5})
    run = method.run(problem, show_progress=False)
    after = scores(model, tiny_world)["haze"]
    assert run.steps < 150
    # Stopped at the first check where held-out haze is no better than the input.
    assert after.psnr - after.input_psnr <= 0.5
