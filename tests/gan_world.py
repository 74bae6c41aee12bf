"""A tiny, seeded GAN world on sklearn's digits: a judge, a feature network and a small GAN, in seconds.

CPU numerics differ between machines (ATEN_CPU_CAPABILITY default / avx2 / avx512 train to different weights),
so the world is sized for its spread, not for one draw: measured over seeds 0-2 x those three (numbers in
tests/model/test_gan_training.py), 1 500 GAN steps dropped modes on some draws (a class at 0.1 % of samples,
FID 8.3) and every forgetting test downstream inherited that; 3 000 steps give every class 6-15 % (FID
0.63-1.06). The bank has 4 000 latents, not 1 000: a 10 % share is then measured to +-0.005, not +-0.01.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from unlearning.data.digits import DigitsDataConfig, build_digits_sets, load_set
from unlearning.data.pairs import PairSet
from unlearning.gan_training import GanTrainConfig, digits_images, train_digits_classifier_cnn, train_gan
from unlearning.generation_metrics import features, judged_sample_sets, latent_bank
from unlearning.models import build_model
from unlearning.models.gan import DigitsGAN
from unlearning.train import TrainConfig

CPU = torch.device("cpu")
FORGET_CLASS = 6
TINY_GAN = {"latent_dim": 16, "w_dim": 16, "mapping_layers": 2, "channels": 16, "discriminator_channels": 16}
TINY_GAN_TRAINING = GanTrainConfig(steps=3000, batch_size=32, learning_rate=3e-3, ema_beta=0.99)
TINY_CLASSIFIER_TRAINING = TrainConfig(steps=600, batch_size=64, learning_rate=3e-3)
BANK_SIZE = 4000


@dataclass
class GanWorld:
    train_images: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    judge: torch.nn.Module
    feature_net: torch.nn.Module
    gan: DigitsGAN
    bank: torch.Tensor  # the fixed latents every score uses

    def fresh_gan(self) -> DigitsGAN:
        return copy.deepcopy(self.gan)

    def sample_sets(self, seed: int = 7, size: int = 1000) -> tuple[PairSet, PairSet]:
        """(negatives, positives) judged from the GAN's samples for a latent bank other than `bank`."""
        return judged_sample_sets(self.gan, self.judge, FORGET_CLASS, latent_bank(self.gan.config.latent_dim, size, seed), CPU)

    def kept_test_features(self) -> torch.Tensor:
        return features(self.feature_net, self.test_images[self.test_labels != FORGET_CLASS], CPU)


def make_gan_world(seed: int = 0, gan_training: GanTrainConfig = TINY_GAN_TRAINING, bank_size: int = BANK_SIZE) -> GanWorld:
    files = build_digits_sets(DigitsDataConfig(seed=seed))
    train, test = load_set(files, "train"), load_set(files, "test")
    torch.manual_seed(seed)
    judge = build_model("digits-judge-cnn", {"channels": 8})
    train_digits_classifier_cnn(judge, train.inputs, train.targets.long(),
                                TrainConfig(**{**TINY_CLASSIFIER_TRAINING.__dict__, "seed": seed}), CPU)
    torch.manual_seed(seed + 1)
    feature_net = build_model("digits-feature-net", {"channels": 12, "feature_dim": 32})
    train_digits_classifier_cnn(feature_net, train.inputs, train.targets.long(),
                                TrainConfig(**{**TINY_CLASSIFIER_TRAINING.__dict__, "seed": seed + 1}), CPU)
    torch.manual_seed(seed)
    gan = build_model("digits-gan", TINY_GAN)
    train_gan(gan, digits_images(train.inputs), GanTrainConfig(**{**gan_training.__dict__, "seed": seed}), CPU, show_progress=False)
    bank = latent_bank(gan.config.latent_dim, bank_size, seed=1000 + seed)
    return GanWorld(digits_images(train.inputs), digits_images(test.inputs), test.targets.long(), judge, feature_net, gan, bank)
