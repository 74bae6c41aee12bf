"""Adapt-then-Unlearn and its baselines on the tiny GAN world: forgetting digit 6.

Measured over seeds 0-2 x ATEN_CPU_CAPABILITY {default, avx2, avx512} (1 core; avx2 and avx512 train to the
same weights on seeds 0 and 2): before, 6's share 0.091-0.124 on the 4 000-latent bank, FID vs kept test
digits 1.41-2.29, KID 0.042-0.097; 89-122 negatives judged from 1 000 samples; the paper's fixed budget, adapt
150 steps x 2 copies and 200 unlearning steps with no stop rule: see each test's comment. Stage 2 of
adapt_then_unlearn with gamma = 0 is exactly gan_finetune with the same seed and steps, so gan_finetune is the
gamma = 0 control. The defaults (1 copy x 50 adapt steps, stage 2 stopped on the probe's share) are tested on
their own against the same control with the same stop rule.
"""

import copy

import pytest
import torch

from tests.gan_world import CPU, FORGET_CLASS
from unlearning.generation_metrics import score_generator
from unlearning.methods import UnlearningProblem, create_method
from unlearning.methods.base import DivergenceError, InapplicableMethodError
from unlearning.methods.generation import EwcPenalty, parameter_distance
from unlearning.tasks import GENERATION
from unlearning.verify import GenerationThresholds, verify_generation

ADAPT = dict(adapt_steps=150, adapt_copies=2, stop_share=None)  # the fixed budget the margins below were measured on
UNLEARN_STEPS = 200
FIXED_BUDGET = 2 * 150 + UNLEARN_STEPS
RUNS = {
    "l2": ("adapt_then_unlearn", dict(ADAPT, unlearn_steps=UNLEARN_STEPS, repulsion="l2", gamma=1.0)),
    "exp": ("adapt_then_unlearn", dict(ADAPT, unlearn_steps=UNLEARN_STEPS, repulsion="exp")),  # calibrated 0.01
    "reci": ("adapt_then_unlearn", dict(ADAPT, unlearn_steps=UNLEARN_STEPS, repulsion="reci")),  # calibrated 0.01
    "control": ("gan_finetune", dict(steps=UNLEARN_STEPS)),
    # the defaults with the tests' stage-2 budget, and their control: no repulsion, the same stop rule
    "early": ("adapt_then_unlearn", dict(unlearn_steps=UNLEARN_STEPS)),
    "early_control": ("adapt_then_unlearn", dict(unlearn_steps=UNLEARN_STEPS, gamma=0.0)),
}


def problem_for(world, model=None):
    negatives, positives = world.sample_sets()
    return UnlearningProblem(model or world.fresh_gan(), negatives, positives, CPU, task=GENERATION)


def scores(world, model):
    return score_generator(model, world.judge, world.feature_net, world.bank, world.kept_test_features(),
                           FORGET_CLASS, CPU, kid_subsets=20)


@pytest.fixture(scope="module")
def before(gan_world):
    return scores(gan_world, gan_world.gan)


@pytest.fixture(scope="module")
def unlearned(gan_world):
    """name -> (model, method, run, problem) for each run in RUNS."""
    results = {}
    for key, (name, params) in RUNS.items():
        problem = problem_for(gan_world)
        method = create_method(name, params, task_kind="generation")
        run = method.run(problem, show_progress=False)
        results[key] = (problem.model, method, run, problem)
    return results


def test_original_generator_makes_the_class(before):
    # measured over seeds 0-2 x {default, avx2, avx512}: 0.091-0.124; bound 0.08. Without this, "forgetting"
    # would mean nothing.
    assert before.forget_share > 0.08


def test_adapted_copies_generate_mostly_the_class(gan_world, unlearned):
    _, method, _, problem = unlearned["l2"]
    adapted = copy.deepcopy(problem.original)
    with torch.no_grad():
        for parameter, value in zip(adapted.generator_parameters(), method.adapted[0]):
            parameter.copy_(value)
    # measured over seeds 0-2 x {default, avx2, avx512}: 0.912-0.986 (from 0.091-0.124); bound 0.8
    assert scores(gan_world, adapted).forget_share > 0.8


def test_adapt_then_unlearn_removes_the_class_and_keeps_quality(gan_world, before, unlearned):
    after = scores(gan_world, unlearned["l2"][0])
    # measured over seeds 0-2 x {default, avx2, avx512}: share 0.000-0.007 (bound 0.015); KID change -0.067 to
    # -0.008 (fewer 6s, closer to the kept classes; bound +0.05); verification passes on all nine (FID change
    # -0.84 to -0.29, smallest kept-class share ratio 0.73-0.94); exp: share 0.000-0.009, passes on all nine.
    assert after.forget_share <= 0.015
    assert after.kid <= before.kid + 0.05
    assert verify_generation(before, after, GenerationThresholds()).passed


@pytest.mark.parametrize("form", ["l2", "exp", "reci"])
def test_each_repulsion_form_pushes_the_generator_away_from_the_adapted_copies(unlearned, form):
    model, method, run, _ = unlearned[form]
    control = unlearned["control"][0]
    # measured over seeds 0-2 x {default, avx2, avx512}: val after stage 2 l2 0.103-0.116, exp 0.102-0.117, reci
    # 0.027-0.034, gamma = 0 control 0.0033-0.0050: the smallest ratio 6.7; bound 3. (reci also forgets, share
    # 0.000-0.024, but fails verification on five of the nine: a kept class thinned or FID up.)
    assert parameter_distance(model, method.adapted) > 3 * parameter_distance(control, method.adapted)
    assert run.steps == FIXED_BUDGET
    assert not model.training


def test_finetuning_without_repulsion_forgets_much_less(gan_world, unlearned):
    control = scores(gan_world, unlearned["control"][0]).forget_share
    repelled = scores(gan_world, unlearned["l2"][0]).forget_share
    # measured over seeds 0-2 x {default, avx2, avx512}: control 0.019-0.041 (bound 0.015, the share the l2 run
    # must reach above), l2 0.000-0.007; control / l2 >= 3.0 (3.0-3.1 on seed 1 with avx2/avx512, 6.7 or more
    # elsewhere); bound 2.5. At the deployed size the control forgets more (0.007 from 0.109) but still 3x the
    # l2 run's share at 1 000 steps.
    assert control > 0.015
    assert control > 2.5 * repelled


def test_the_early_stop_reaches_the_share_bound_in_fewer_steps_than_the_fixed_budget(gan_world, before, unlearned):
    model, method, run, _ = unlearned["early"]
    after = scores(gan_world, model)
    # measured over seeds 0-2 (default capability only): steps 175 / 200 / 250 of the fixed budget's 500 (seed 2
    # fired on the last check its budget allows), the probe's last estimate 0.0020 / 0.0024 / 0.0029 (stop_share
    # 0.003), share 0.0055 / 0.0055 / 0.0063 (bound 0.015, as for the fixed budget), KID change -0.066 / -0.011 /
    # -0.004 (bound +0.05). Not asserted: verification, which fails on seed 2 (kept class 8 at 0.42 of its share,
    # the fixed budget 0.85); it passes on seeds 0 and 1.
    assert method.stop.history[-1][1] <= method.params.stop_share  # it stopped on the rule
    assert run.steps <= FIXED_BUDGET / 2
    assert after.forget_share <= 0.015
    assert after.kid <= before.kid + 0.05


def test_without_repulsion_the_stop_rule_never_fires_and_the_class_stays(gan_world, unlearned):
    """Negative control: gamma = 0 with the same stop rule runs its whole budget and leaves the class."""
    model, method, run, _ = unlearned["early_control"]
    # measured over seeds 0-2 (default capability only): all three ran the whole 50 + 200 steps; the probe's smallest
    # estimate 0.0083 / 0.0308 / 0.0459 (stop_share 0.003); share 0.0188 / 0.0213 / 0.0370 (bound 0.015).
    assert run.steps == 50 + UNLEARN_STEPS
    assert all(share > method.params.stop_share for _, share in method.stop.history)
    assert scores(gan_world, model).forget_share > 0.015


def test_an_untouched_generator_fails_verification(before):
    # measured over seeds 0-2 x {default, avx2, avx512}: exactly these two checks fail on all nine
    verdict = verify_generation(before, before, GenerationThresholds())
    assert not verdict.passed
    failed = {check.name for check in verdict.checks if not check.passed}
    assert failed == {"forget.share", "forget.reduction"}


def test_ewc_penalty_does_not_depend_on_the_fishers_scale(gan_world):
    model = gan_world.fresh_gan()
    anchor = [p.detach().clone() for p in model.synthesis_convolutions()]
    fisher = [torch.rand_like(p) for p in anchor]
    with torch.no_grad():
        for parameter in model.synthesis_convolutions():
            parameter.add_(0.01 * torch.randn_like(parameter))
    penalties, gradients = [], []
    for scale in (1.0, 1000.0):
        value = EwcPenalty(anchor, [scale * f for f in fisher], ewc_lambda=2.0)(model)
        penalties.append(value.item())
        gradients.append(torch.autograd.grad(value, model.synthesis_convolutions()))
    assert penalties[0] > 0
    assert abs(penalties[0] - penalties[1]) < 1e-5 * penalties[0]
    for small, large in zip(*gradients):
        assert torch.allclose(small, large, rtol=1e-4)


def test_extrapolation_steps_along_the_mean_adapted_direction(gan_world):
    problem = problem_for(gan_world)
    method = create_method("gan_extrapolation", dict(adapt_steps=20, gamma=-0.5))
    method.run(problem, show_progress=False)
    for before, after, *adapted in zip(problem.original.generator_parameters(), problem.model.generator_parameters(),
                                       *method.adapted):
        expected = before - 0.5 * (torch.stack(adapted).mean(dim=0) - before)
        assert torch.allclose(after, expected, atol=1e-6)
    assert torch.equal(problem.model.discriminator.layers[0].weight, problem.original.discriminator.layers[0].weight)


def test_supervised_methods_are_refused_for_generators(gan_world):
    for name in ("finetune", "gradient_ascent", "scrub", "salun"):
        with pytest.raises(InapplicableMethodError):
            create_method(name, {}, task_kind="generation")
        with pytest.raises(InapplicableMethodError):
            create_method(name, {}).run(problem_for(gan_world), show_progress=False)


def test_generation_methods_are_refused_for_other_tasks():
    for name in ("adapt_then_unlearn", "gan_finetune", "gan_ewc_finetune", "gan_extrapolation"):
        with pytest.raises(InapplicableMethodError):
            create_method(name, {}, task_kind="classification")


def test_non_finite_training_stops_with_divergence_error(gan_world):
    problem = problem_for(gan_world)
    problem.retain.inputs[:] = float("nan")
    with pytest.raises(DivergenceError):
        create_method("gan_finetune", dict(steps=3)).run(problem, show_progress=False)
