"""A tiny, seeded digits world: a small MLP trained on the 70/30 split in well under a second."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from unlearning.data.digits import CLASSES, DigitsDataConfig, build_digits_sets, load_set, split_forget
from unlearning.data.pairs import PairSet
from unlearning.models import build_model
from unlearning.tasks import Classification
from unlearning.train import TrainConfig, train_model

TINY_CLASSIFIER = {"hidden": 128, "depth": 2}
TINY_CLASSIFIER_TRAINING = TrainConfig(steps=400, batch_size=32, learning_rate=2e-3)
FORGET_CLASS = 8
CPU = torch.device("cpu")
DIGITS_TASK = Classification(CLASSES)


@dataclass
class DigitsWorld:
    train: PairSet
    test: PairSet
    forget: PairSet
    retain: PairSet
    model: torch.nn.Module

    def fresh_model(self) -> torch.nn.Module:
        return copy.deepcopy(self.model)

    def test_split(self) -> tuple[PairSet, PairSet]:
        """(test examples of the forgotten class, the other test examples)."""
        return split_forget(self.test, forget_class=FORGET_CLASS)


def make_digits_world(seed: int, train_fraction: float = 0.7, training: TrainConfig = TINY_CLASSIFIER_TRAINING,
                      architecture: dict | None = None) -> DigitsWorld:
    files = build_digits_sets(DigitsDataConfig(train_fraction=train_fraction, seed=seed))
    train, test = load_set(files, "train"), load_set(files, "test")
    forget, retain = split_forget(train, forget_class=FORGET_CLASS)
    torch.manual_seed(seed)
    model = build_model("digits-mlp", architecture or TINY_CLASSIFIER)
    train_model(model, train, DIGITS_TASK, TrainConfig(**{**training.__dict__, "seed": seed}), CPU, show_progress=False)
    return DigitsWorld(train, test, forget, retain, model)
