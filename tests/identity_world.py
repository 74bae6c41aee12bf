"""The tiny GAN world plus what identity unlearning needs: an inversion encoder, two identity networks
(one for the loss, one held out for verification, different layouts and seeds), one identity image
(a test digit the GAN never trained on), its augmented views and a fixed set of other identities.

Measured (seed 0, 1 core): see tests/model/test_guide.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tests.gan_world import CPU, TINY_GAN_TRAINING, GanWorld, make_gan_world
from tests.world_cache import shared_world
from unlearning.gan_training import GanTrainConfig
from unlearning.generation_metrics import features
from unlearning.identity import (
    EncoderTrainConfig,
    IdentityTrainConfig,
    augmented_views,
    train_encoder,
    train_identity_net,
)
from unlearning.methods.identity import IdentityProblem, identity_problem
from unlearning.models import build_model

TINY_ENCODER = {"w_dim": 16, "channels": 16, "hidden": 64}
TINY_ENCODER_TRAINING = EncoderTrainConfig(steps=1500, batch_size=64, learning_rate=3e-3)
TINY_IDENTITY_TRAINING = IdentityTrainConfig(steps=800, batch_size=128, learning_rate=3e-3)
LOSS_NET = {"layout": "conv", "width": 16, "embedding_dim": 32}
VERIFIER_NET = {"layout": "mlp", "width": 32, "embedding_dim": 32}
VIEWS = 8
OTHERS = 12
# GUIDE's tests were calibrated on the 1 500-step GAN with a 1 000-latent bank (tests/model/test_guide.py). On
# the 3 000-step GAN the generation tests now use (tests/gan_world.py), measured (seed 0, avx2): guide's views fall
# only 0.65 -> 0.40, FID_pre 0.61, two outputs collapse (+0.25), and the baseline keeps the others' worst drop
# at 0.27: GUIDE's scenario needs re-calibrating there (it is being changed in unlearning/methods/guide.py), so
# until then the identity world keeps the GAN it was calibrated on.
IDENTITY_GAN_TRAINING = GanTrainConfig(**{**TINY_GAN_TRAINING.__dict__, "steps": 1500})
IDENTITY_BANK_SIZE = 1000


def make_identity_gan_world(seed: int = 0) -> GanWorld:
    """The GAN world GUIDE's tests were calibrated on (see IDENTITY_GAN_TRAINING)."""
    return make_gan_world(seed, IDENTITY_GAN_TRAINING, IDENTITY_BANK_SIZE)


@dataclass
class IdentityWorld:
    gan: GanWorld
    encoder: torch.nn.Module
    identity_net: torch.nn.Module  # used in the loss
    verifier: torch.nn.Module  # held out: verification only
    identity: torch.Tensor  # 1 x 1 x 8 x 8, a test digit
    views: torch.Tensor
    others: torch.Tensor
    real_features: torch.Tensor

    def problem(self, identity: torch.Tensor | None = None) -> IdentityProblem:
        return identity_problem(self.gan.fresh_gan(), self.identity if identity is None else identity, self.encoder,
                                self.identity_net, self.gan.feature_net, CPU)


def pick_identities(test_images: torch.Tensor, test_labels: torch.Tensor, seed: int, others: int = OTHERS):
    """A seeded choice of one identity image and `others` other test digits spread over the *other*
    classes: at 8x8 two writers' instances of one digit are as alike as twins (see test_guide.py)."""
    order = torch.randperm(len(test_images), generator=torch.Generator().manual_seed(seed))
    identity = test_images[order[:1]]
    identity_class = int(test_labels[order[0]])
    chosen, per_class = [], {}
    for index in order[1:].tolist():
        label = int(test_labels[index])
        if label != identity_class and per_class.get(label, 0) < (others + 8) // 9:
            chosen.append(index)
            per_class[label] = per_class.get(label, 0) + 1
        if len(chosen) == others:
            break
    return identity, test_images[chosen]


def make_identity_world(gan: GanWorld, seed: int = 0) -> IdentityWorld:
    torch.manual_seed(seed)
    encoder = build_model("digits-gan-encoder", TINY_ENCODER)
    train_encoder(encoder, gan.gan, gan.train_images, EncoderTrainConfig(**{**TINY_ENCODER_TRAINING.__dict__, "seed": seed}), CPU)
    torch.manual_seed(seed + 10)
    identity_net = build_model("digits-identity-net", LOSS_NET)
    train_identity_net(identity_net, gan.train_images, IdentityTrainConfig(**{**TINY_IDENTITY_TRAINING.__dict__, "seed": seed + 10}), CPU)
    torch.manual_seed(seed + 20)
    verifier = build_model("digits-identity-net", VERIFIER_NET)
    train_identity_net(verifier, gan.train_images, IdentityTrainConfig(**{**TINY_IDENTITY_TRAINING.__dict__, "seed": seed + 20}), CPU)
    identity, others = pick_identities(gan.test_images, gan.test_labels, seed)
    views = augmented_views(identity, VIEWS, seed=seed + 30)
    return IdentityWorld(gan, encoder, identity_net, verifier, identity, views, others,
                         features(gan.feature_net, gan.test_images, CPU))


def shared_identity_world(tmp_path_factory) -> IdentityWorld:
    """Seed 0's identity world, trained once per test run (tests/world_cache.py): GUIDE's tests and the flow's use it."""
    return shared_world("identity-seed0", lambda: make_identity_world(make_identity_gan_world(seed=0), seed=0), tmp_path_factory)
