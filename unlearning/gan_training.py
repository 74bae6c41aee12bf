"""Training for the digits GAN (StyleGAN2's recipe, shrunk) and for the CNNs that judge its samples.

`train_gan` is the whole recipe: non-saturating logistic loss, lazy R1 on real images, Adam with
betas (0, 0.99), an EMA of the generator for sampling, and `w_avg` tracked. The same function
retrains a GAN without a class (pass other images). `AdversarialTraining` is that recipe's step,
shared with the generation unlearning methods, which add terms to the generator's loss.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional
from tqdm.auto import tqdm

from unlearning.data.pairs import PairSet
from unlearning.models.gan import DigitsGAN
from unlearning.tasks import Classification
from unlearning.train import TrainConfig, train_model

W_AVG_BETA = 0.995  # StyleGAN2's w_avg tracking rate


@dataclass(frozen=True)
class GanTrainConfig:
    """r1_gamma: weight of R1 (applied every r1_every D steps, scaled up by r1_every, "lazy");
    ema_beta: per-step decay of the generator EMA that is kept for sampling.

    Measured with the default GanConfig (seed 0, 1 core, ~11 ms a step): FID vs real test digits in
    the default feature network's space 52 / 17 / 2.3 / 1.4 / 1.16 / 0.98 after 500 / 1k / 2k / 3k /
    4k / 5k steps (train vs test digits: 0.63); every class 8-12 % of samples from 2k steps on."""

    steps: int = 4000
    batch_size: int = 64
    learning_rate: float = 2e-3
    r1_gamma: float = 1.0
    r1_every: int = 16
    ema_beta: float = 0.995
    seed: int = 0


def digits_images(inputs: torch.Tensor) -> torch.Tensor:
    """Flat digits rows N x 64 in [0, 1] as images N x 1 x 8 x 8."""
    return inputs.reshape(-1, 1, 8, 8)


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss, softplus(-D(G(z))), averaged."""
    return functional.softplus(-fake_logits).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return functional.softplus(fake_logits).mean() + functional.softplus(-real_logits).mean()


def r1_penalty(discriminator: nn.Module, real: torch.Tensor) -> torch.Tensor:
    """Mean squared norm of D's gradient at real images."""
    real = real.detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(discriminator(real).sum(), real, create_graph=True)
    return gradient.pow(2).flatten(1).sum(dim=1).mean()


class AdversarialTraining:
    """One GAN's optimisers, generator EMA and latent stream; `step` is one D step then one G step.

    `ema` holds EMA copies of `model.mapping` and `model.synthesis`; `finish()` writes them into the
    model (so the model ends as the EMA generator + the trained D) and leaves it in eval mode.
    """

    def __init__(self, model: DigitsGAN, config: GanTrainConfig, device: torch.device):
        self.model = model.to(device).train()
        self.config = config
        self.device = device
        self.latents = torch.Generator(device="cpu").manual_seed(config.seed)
        # Lazy regularisation: rescale D's lr and betas so R1 every k steps matches R1 every step (StyleGAN2).
        ratio = config.r1_every / (config.r1_every + 1)
        self.generator_optimizer = torch.optim.Adam(model.generator_parameters(), lr=config.learning_rate, betas=(0.0, 0.99))
        self.discriminator_optimizer = torch.optim.Adam(
            model.discriminator.parameters(), lr=config.learning_rate * ratio, betas=(0.0, 0.99**ratio)
        )
        self.ema = nn.ModuleDict({"mapping": copy.deepcopy(model.mapping), "synthesis": copy.deepcopy(model.synthesis)})
        self.ema.requires_grad_(False)
        self.steps_done = 0

    def sample_latents(self, count: int) -> torch.Tensor:
        return torch.randn(count, self.model.config.latent_dim, generator=self.latents).to(self.device)

    def step(self, real: torch.Tensor, generator_penalty: Callable[[], torch.Tensor] | None = None) -> dict[str, float]:
        """One D step on `real` vs fresh fakes (R1 every r1_every steps), then one G step whose loss is the
        non-saturating loss plus `generator_penalty()` when given. Returns the losses as floats."""
        model, config = self.model, self.config
        batch = real.shape[0]
        model.discriminator.requires_grad_(True)
        with torch.no_grad():
            fake = model(self.sample_latents(batch))
        d_loss = discriminator_loss(model.discriminator(real), model.discriminator(fake))
        if self.steps_done % config.r1_every == 0:
            d_loss = d_loss + (config.r1_gamma / 2) * config.r1_every * r1_penalty(model.discriminator, real)
        self.discriminator_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.discriminator_optimizer.step()

        model.discriminator.requires_grad_(False)
        w = model.mapping(self.sample_latents(batch))
        g_loss = generator_loss(model.discriminator(model.synthesis(w)))
        total = g_loss if generator_penalty is None else g_loss + generator_penalty()
        self.generator_optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.generator_optimizer.step()
        model.discriminator.requires_grad_(True)

        with torch.no_grad():
            model.w_avg.lerp_(w.detach().mean(dim=0), 1 - W_AVG_BETA)
            for name, module in (("mapping", model.mapping), ("synthesis", model.synthesis)):
                for averaged, current in zip(self.ema[name].parameters(), module.parameters()):
                    averaged.lerp_(current, 1 - config.ema_beta)
        self.steps_done += 1
        return {"discriminator": d_loss.item(), "generator": g_loss.item(), "generator_total": total.item()}

    def finish(self) -> DigitsGAN:
        self.model.mapping.load_state_dict(self.ema["mapping"].state_dict())
        self.model.synthesis.load_state_dict(self.ema["synthesis"].state_dict())
        return self.model.eval()


def train_gan(
    model: DigitsGAN, images: torch.Tensor, config: GanTrainConfig, device: torch.device, show_progress: bool = True
) -> DigitsGAN:
    """Fit `model` to `images` (N x 1 x 8 x 8 in [0, 1]); returns it in eval mode holding the EMA
    generator and the trained discriminator. Seeded: same model init, images and config, same weights."""
    torch.manual_seed(config.seed)
    batches = torch.Generator().manual_seed(config.seed + 1)
    images = images.reshape(-1, 1, 8, 8)
    training = AdversarialTraining(model, config, device)
    for _ in tqdm(range(config.steps), desc="train-gan", disable=not show_progress, mininterval=2):
        real = images[torch.randint(len(images), (config.batch_size,), generator=batches)].to(device)
        training.step(real)
    return training.finish()


def train_digits_classifier_cnn(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, config: TrainConfig, device: torch.device,
    show_progress: bool = False,
) -> nn.Module:
    """Fit a judge or feature network (any digits classifier) to images N x 1 x 8 x 8 or N x 64 and
    int labels with cross-entropy, via the shared loop; returns it in eval mode."""
    train_set = PairSet("digits-train", images.reshape(-1, 1, 8, 8), labels.float())
    return train_model(model, train_set, Classification(model.config.classes), config, device, show_progress)
