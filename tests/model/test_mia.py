"""Membership inference sees nothing where there is nothing, and sees an overfit model's training set."""

import numpy as np
import torch

from tests.digits_world import CPU, DIGITS_TASK, make_digits_world
from unlearning.data.pairs import PairSet, concat
from unlearning.mia import ShadowAttack, loss_threshold_auc, membership_auc, svc_mia_efficacy
from unlearning.models import build_model
from unlearning.train import TrainConfig, train_model

# 5% of digits (about 90 examples), 800 steps: measured loss-threshold AUC 0.70 / 0.66 / 0.67 (seeds 0-2).
OVERFIT = TrainConfig(steps=800, batch_size=32, learning_rate=2e-3)


def test_auc_is_at_chance_for_identically_distributed_scores():
    rng = np.random.default_rng(0)
    # 2000 vs 2000 draws: the AUC's standard error is about 0.009.
    assert abs(membership_auc(rng.normal(size=2000), rng.normal(size=2000)) - 0.5) < 0.04


def test_loss_attack_is_at_chance_between_two_halves_of_unseen_data(digits_world):
    test = digits_world.test
    half = len(test) // 2
    first, second = test.subset(torch.arange(half)), test.subset(torch.arange(half, len(test)))
    # Measured 0.49 / 0.49 / 0.47 on the overfit variant; both halves are non-members.
    assert abs(loss_threshold_auc(digits_world.model, first, second, DIGITS_TASK, CPU) - 0.5) < 0.08


def test_loss_attack_finds_the_training_set_of_an_overfit_model():
    world = make_digits_world(seed=0, train_fraction=0.05, training=OVERFIT)
    assert loss_threshold_auc(world.model, world.train, world.test, DIGITS_TASK, CPU) > 0.6


def test_svc_efficacy_calls_training_examples_members_and_unseen_ones_less_so():
    world = make_digits_world(seed=0, train_fraction=0.05, training=OVERFIT)
    half = len(world.test) // 2
    shadow_test, unseen = world.test.subset(torch.arange(half)), world.test.subset(torch.arange(half, len(world.test)))
    on_training = svc_mia_efficacy(world.model, world.train, shadow_test, world.train, CPU)
    on_unseen = svc_mia_efficacy(world.model, world.train, shadow_test, unseen, CPU)
    # 20% train variant measured 0.00 (training) vs 0.09-0.14 (unseen).
    assert on_training < on_unseen


def test_shadow_attack_scores_members_above_non_members_of_an_overfit_model():
    world = make_digits_world(seed=0, train_fraction=0.05, training=OVERFIT)
    unseen = world.test.subset(torch.arange(len(world.train)))
    candidates = concat([world.train, unseen], "candidates")
    is_member = np.r_[np.ones(len(world.train), bool), np.zeros(len(unseen), bool)]

    def train(train_set: PairSet, seed: int):
        torch.manual_seed(seed)
        config = TrainConfig(**{**OVERFIT.__dict__, "seed": seed})
        return train_model(build_model("digits-mlp", {"hidden": 128, "depth": 2}), train_set, DIGITS_TASK, config, CPU, False)

    empty = PairSet("none", candidates.inputs[:0], candidates.targets[:0])
    attack = ShadowAttack.fit(candidates, empty, train, shadows=4, device=CPU, seed=0)
    # 20% train variant, 4 shadows: measured 0.56 / 0.55 / 0.58; 5% overfits more.
    assert attack.auc(world.model, is_member, CPU) > 0.55
