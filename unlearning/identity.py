"""Identity on 8x8 digits: one handwritten instance stands for one person's face (GUIDE's setting).

- "Other photos of the same person" are augmented views of the one image: small shifts, rotations and
  stroke-width changes, drawn from a seeded generator so a request's views are the same on any machine.
- The identity embedding (ArcFace's stand-in) is trained by instance discrimination (SimCLR's NT-Xent):
  two augmented views of each image are positives, every other image in the batch a negative.
- The perceptual distance (LPIPS's stand-in; LPIPS's weights cannot be downloaded here) compares the
  unit-normalised activations of a fixed feature network layer by layer, as LPIPS does, with uniform
  instead of learned layer weights.
- The inversion encoder (GOAE's stand-in) is trained after the generator, with the generator frozen,
  on pairs (G(w), w) and on reconstructing real digits through G.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional
from tqdm.auto import tqdm

from unlearning.device import autocast
from unlearning.models.digits_cnn import DigitsFeatureNet
from unlearning.models.gan import DigitsGAN
from unlearning.models.identity import IdentityNet, InversionEncoder


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the augmentations (uniform, per image): shift in pixels along each axis, rotation in
    degrees, stroke in [-1, 1] (negative thins the strokes towards a 3x3 erosion, positive thickens them
    towards a 3x3 dilation). On 8x8 digits one pixel is an eighth of the image, so the shifts stay small."""

    max_shift: float = 0.75
    max_rotation_degrees: float = 12.0
    max_stroke: float = 0.5


def augment(images: torch.Tensor, generator: torch.Generator, config: AugmentConfig = AugmentConfig()) -> torch.Tensor:
    """One random augmentation of each image (N x 1 x 8 x 8 in [0, 1]), drawn from `generator` (CPU)."""
    images = images.reshape(-1, 1, 8, 8)
    count, device = images.shape[0], images.device

    def uniform(limit: float) -> torch.Tensor:
        return ((torch.rand(count, generator=generator) * 2 - 1) * limit).to(device)

    angle = uniform(math.radians(config.max_rotation_degrees))
    # affine_grid works in [-1, 1] coordinates, where one pixel of 8 is 2 / 8.
    shift_x, shift_y = uniform(config.max_shift) * 2 / 8, uniform(config.max_shift) * 2 / 8
    theta = torch.stack([torch.stack([angle.cos(), -angle.sin(), shift_x], dim=1),
                         torch.stack([angle.sin(), angle.cos(), shift_y], dim=1)], dim=1)
    grid = functional.affine_grid(theta, list(images.shape), align_corners=False)
    moved = functional.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    stroke = uniform(config.max_stroke).reshape(-1, 1, 1, 1)
    dilated = functional.max_pool2d(moved, 3, stride=1, padding=1)
    eroded = -functional.max_pool2d(-moved, 3, stride=1, padding=1)
    restroked = moved + stroke.clamp(min=0) * (dilated - moved) + (-stroke).clamp(min=0) * (eroded - moved)
    return restroked.clamp(0, 1)


def augmented_views(image: torch.Tensor, count: int, seed: int, config: AugmentConfig = AugmentConfig()) -> torch.Tensor:
    """`count` deterministic views of one image (1 x 1 x 8 x 8 or 64 values): the same seed gives the same views."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return augment(image.reshape(1, 1, 8, 8).expand(count, 1, 8, 8).contiguous(), generator, config)


@dataclass(frozen=True)
class IdentityTrainConfig:
    """temperature: NT-Xent's (SimCLR uses 0.1-0.5; lower separates instances harder)."""

    steps: int = 1500
    batch_size: int = 128
    learning_rate: float = 2e-3
    temperature: float = 0.2
    seed: int = 0
    augment: AugmentConfig = AugmentConfig()


def nt_xent(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's contrastive loss for unit embeddings of two views of the same N images (row i of each)."""
    embeddings = torch.cat([first, second]).float()
    count = first.shape[0]
    logits = embeddings @ embeddings.T / temperature
    logits = logits.masked_fill(torch.eye(2 * count, dtype=torch.bool, device=logits.device), float("-inf"))
    partner = torch.cat([torch.arange(count, 2 * count), torch.arange(count)]).to(logits.device)
    return functional.cross_entropy(logits, partner)


def train_identity_net(
    model: IdentityNet, images: torch.Tensor, config: IdentityTrainConfig, device: torch.device, show_progress: bool = False
) -> IdentityNet:
    """Instance discrimination on `images` (N x 1 x 8 x 8 in [0, 1]): each image its own class, its
    augmented views the positives. Seeded; returns the model in eval mode."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    images = images.reshape(-1, 1, 8, 8)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)
    for _ in tqdm(range(config.steps), desc="train-identity", disable=not show_progress, mininterval=2):
        batch = images[torch.randint(len(images), (min(config.batch_size, len(images)),), generator=generator)]
        first, second = augment(batch, generator, config.augment), augment(batch, generator, config.augment)
        with autocast(device):
            loss = nt_xent(model(first.to(device)), model(second.to(device)), config.temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


@dataclass(frozen=True)
class EncoderTrainConfig:
    """reconstruction_weight: weight of |G(E(x)) - x|^2 on real digits against |E(G(w)) - w|^2 on
    generated pairs; the pairs alone invert the generator's own samples well but real digits worse."""

    steps: int = 2000
    batch_size: int = 64
    learning_rate: float = 2e-3
    reconstruction_weight: float = 1.0
    seed: int = 0


def train_encoder(
    encoder: InversionEncoder, generator: DigitsGAN, real_images: torch.Tensor, config: EncoderTrainConfig,
    device: torch.device, show_progress: bool = False,
) -> InversionEncoder:
    """Fit `encoder` to invert the frozen `generator`: latent regression on (G(w), w) for w from the
    mapping network, plus the pixel error of G(E(x)) on `real_images`. Starts from the generator's
    `w_avg`; seeded; returns the encoder in eval mode."""
    torch.manual_seed(config.seed)
    generator_rng = torch.Generator().manual_seed(config.seed)
    # Frozen while the encoder trains through it, then given back as it came: the caller's generator is
    # still theirs to train (a test's shared GAN world, the registered base model).
    was_training, trainable = generator.training, [p.requires_grad for p in generator.parameters()]
    generator = generator.to(device).eval().requires_grad_(False)
    try:
        _fit_encoder(encoder, generator, real_images, config, device, generator_rng, show_progress)
    finally:
        generator.train(was_training)
        for parameter, flag in zip(generator.parameters(), trainable):
            parameter.requires_grad_(flag)
    return encoder.eval()


def _fit_encoder(encoder: InversionEncoder, generator: DigitsGAN, real_images: torch.Tensor, config: EncoderTrainConfig,
                 device: torch.device, generator_rng: torch.Generator, show_progress: bool) -> None:
    encoder.to(device).train()
    with torch.no_grad():
        encoder.w_avg.copy_(generator.w_avg)
    real_images = real_images.reshape(-1, 1, 8, 8)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)
    for _ in tqdm(range(config.steps), desc="train-encoder", disable=not show_progress, mininterval=2):
        z = torch.randn(config.batch_size, generator.config.latent_dim, generator=generator_rng).to(device)
        real = real_images[torch.randint(len(real_images), (config.batch_size,), generator=generator_rng)].to(device)
        with autocast(device):
            with torch.no_grad():
                w = generator.mapping(z)
                fake = generator.synthesis(w)
            latent_loss = (encoder(fake) - w).float().pow(2).mean()
            reconstruction = (generator.synthesis(encoder(real)).float() - real).pow(2).mean()
            loss = latent_loss + config.reconstruction_weight * reconstruction
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()


def perceptual_layers(feature_net: DigitsFeatureNet, images: torch.Tensor) -> list[torch.Tensor]:
    """The feature network's activations after each nonlinearity of its body (two conv maps and the
    feature vector), each N x C x H x W."""
    x = images.reshape(-1, 1, 8, 8)
    layers = []
    for module in feature_net.body:
        x = module(x)
        if isinstance(module, (nn.ELU, nn.Tanh)):
            layers.append(x if x.dim() == 4 else x[:, :, None, None])
    return layers


def perceptual_distance(feature_net: DigitsFeatureNet, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """LPIPS's recipe with a network trained here: per layer, unit-normalise each position's channel
    vector, take the squared difference, average over positions; sum over layers. Per example (N);
    0 for identical images, at most 4 per layer."""
    total = 0
    for a, b in zip(perceptual_layers(feature_net, first), perceptual_layers(feature_net, second)):
        a, b = functional.normalize(a.float(), dim=1), functional.normalize(b.float(), dim=1)
        total = total + (a - b).pow(2).sum(dim=1).mean(dim=(1, 2))
    return total


def identity_similarity(identity_net: IdentityNet, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Cosine of the identity embeddings of paired images (N)."""
    return (identity_net(first).float() * identity_net(second).float()).sum(dim=1)


def typical_latent_distance(generator: DigitsGAN, samples: int = 2048, seed: int = 0) -> float:
    """The median |w - w_avg| over mapped standard-normal latents: the yardstick GUIDE's target
    distance d is scaled by (d = ratio x this), since raw distances mean nothing across latent spaces."""
    device = generator.w_avg.device
    z = torch.randn(samples, generator.config.latent_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    with torch.no_grad():
        w = generator.mapping(z).float()
    return float((w - generator.w_avg).norm(dim=1).median())
