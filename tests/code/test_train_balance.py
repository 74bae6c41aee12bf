"""Balanced training: one equal sub-batch per degradation, each weighted by 1 / its do-nothing loss."""

import torch

from unlearning.data.pairs import PairSet
from unlearning.tasks import RESTORATION
from unlearning.train import balanced_sampler


def pairs(name: str, error: float, count: int) -> PairSet:
    targets = torch.full((count, 3, 4, 4), 0.5)
    return PairSet(name, targets + error, targets)


def test_each_set_gets_an_equal_share_of_the_batch():
    sets = [pairs("noise", 0.1, 50), pairs("rain", 0.2, 7), pairs("haze", 0.4, 300)]
    inputs, targets, weights = balanced_sampler(sets, RESTORATION, batch_size=18)(torch.Generator().manual_seed(0))
    assert inputs.shape[0] == targets.shape[0] == weights.shape[0] == 18
    errors = (inputs - targets).flatten(1).mean(dim=1)
    for index, error in enumerate((0.1, 0.2, 0.4)):
        assert torch.allclose(errors[6 * index : 6 * index + 6], torch.tensor(error))


def test_a_set_with_a_larger_do_nothing_loss_weighs_no_more_than_the_others():
    sets = [pairs("noise", 0.1, 20), pairs("haze", 0.4, 20)]
    inputs, targets, weights = balanced_sampler(sets, RESTORATION, batch_size=8)(torch.Generator().manual_seed(0))
    # The identity model's loss: each set contributes exactly 1/2 however large its error.
    contributions = RESTORATION.loss(inputs, targets) * weights
    assert torch.allclose(contributions[:4].sum(), torch.tensor(0.5)) and torch.allclose(contributions[4:].sum(), torch.tensor(0.5))


def test_the_step_hook_sees_every_step_and_training_resumes_after_it():
    from unlearning.models import build_model
    from unlearning.train import TrainConfig, train_restorer

    seen = []

    def hook(step, model):
        seen.append((step, model.training))
        model.eval()  # an evaluating hook leaves the model in eval mode; training must switch back

    model = build_model("restorer-unet", {"width": 4, "levels": 1})
    train_restorer(model, [pairs("noise", 0.1, 8), pairs("haze", 0.4, 8)], TrainConfig(steps=3, batch_size=4, balance_sets=True),
                   torch.device("cpu"), show_progress=False, after_step=hook)
    assert seen == [(1, True), (2, True), (3, True)] and not model.training
