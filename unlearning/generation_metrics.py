"""How a generator is scored: which classes its samples show (by a judge) and how far its samples'
features are from real digits' (FID, KID) in a feature network's space.

Forgetting is measured on a fixed latent bank, so "before" and "after" compare the same z.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg
from torch import nn

from unlearning.data.pairs import PairSet
from unlearning.verify import GenerationScores


def latent_bank(latent_dim: int, size: int, seed: int) -> torch.Tensor:
    """`size` x `latent_dim` standard normal latents from a seeded CPU generator: the same seed gives
    the same bank on any machine and any device the model runs on."""
    return torch.randn(size, latent_dim, generator=torch.Generator(device="cpu").manual_seed(seed))


@torch.no_grad()
def generate_images(model: nn.Module, latents: torch.Tensor, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    """The generator's images for `latents` (eval mode, no grad), N x 1 x 8 x 8 on the CPU."""
    model.eval()
    return torch.cat([model(latents[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(latents), batch_size)])


@torch.no_grad()
def _map_batches(function, images: torch.Tensor, device: torch.device, batch_size: int) -> torch.Tensor:
    return torch.cat([function(images[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(images), batch_size)])


def predicted_classes(judge: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    """The judge's class for each image (N int64)."""
    judge.eval()
    return _map_batches(judge, images, device, batch_size).argmax(dim=1)


def class_shares(judge: nn.Module, images: torch.Tensor, device: torch.device, classes: int = 10) -> torch.Tensor:
    """Share of `images` the judge assigns to each class (`classes` floats summing to 1)."""
    counts = torch.bincount(predicted_classes(judge, images, device), minlength=classes)
    return counts.float() / max(len(images), 1)


def features(feature_net: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    """The feature network's `features` of `images` (N x D, CPU)."""
    feature_net.eval()
    return _map_batches(feature_net.features, images, device, batch_size)


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """FID between two feature sets: |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), in float64."""
    a, b = np.asarray(features_a, dtype=np.float64), np.asarray(features_b, dtype=np.float64)
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    if not np.isfinite(root).all():
        # Near-singular covariances: regularise as the reference FID code does.
        offset = np.eye(cov_a.shape[0]) * 1e-6
        root = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    root = root.real  # sqrtm returns tiny imaginary parts from rounding
    return float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root))


def kernel_inception_distance(
    features_a: torch.Tensor, features_b: torch.Tensor, subsets: int = 50, subset_size: int = 200, seed: int = 0
) -> tuple[float, float]:
    """KID (Binkowski et al. 2018): the unbiased MMD^2 with the polynomial kernel (x.y / d + 1)^3,
    averaged over `subsets` random subsets of `subset_size` from each set; returns (mean, std).
    Unbiased, so two samples of one distribution score ~0 (and may go slightly negative)."""
    a, b = np.asarray(features_a, dtype=np.float64), np.asarray(features_b, dtype=np.float64)
    dimension = a.shape[1]
    size = min(subset_size, len(a), len(b))
    rng = np.random.default_rng(seed)
    estimates = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), size, replace=False)]
        y = b[rng.choice(len(b), size, replace=False)]
        k_xx = (x @ x.T / dimension + 1) ** 3
        k_yy = (y @ y.T / dimension + 1) ** 3
        k_xy = (x @ y.T / dimension + 1) ** 3
        off_diagonal = size * (size - 1)
        estimates.append(
            (k_xx.sum() - np.trace(k_xx)) / off_diagonal + (k_yy.sum() - np.trace(k_yy)) / off_diagonal - 2 * k_xy.mean()
        )
    return float(np.mean(estimates)), float(np.std(estimates))


def judged_sample_sets(
    model: nn.Module, judge: nn.Module, forget_class: int, latents: torch.Tensor, device: torch.device
) -> tuple[PairSet, PairSet]:
    """(negatives, positives): the generator's samples for `latents` that the judge calls
    `forget_class`, and the rest, as PairSets of images and judge labels (what the generation
    methods take as `forget` and `retain`)."""
    images = generate_images(model, latents, device)
    labels = predicted_classes(judge, images, device)
    chosen = labels == forget_class
    return (PairSet("negatives", images[chosen], labels[chosen].float()),
            PairSet("positives", images[~chosen], labels[~chosen].float()))


def score_generator(
    model: nn.Module, judge: nn.Module, feature_net: nn.Module, latents: torch.Tensor, kept_real_features: torch.Tensor,
    forget_class: int, device: torch.device, kid_subsets: int = 50, kid_subset_size: int = 200,
) -> GenerationScores:
    """`model`'s GenerationScores on the latent bank `latents`, against `kept_real_features` (the feature
    network's features of real digits of the kept classes, e.g. the test split without the class)."""
    images = generate_images(model, latents, device)
    shares = class_shares(judge, images, device, classes=judge.config.classes)
    generated = features(feature_net, images, device)
    kid, _ = kernel_inception_distance(generated, kept_real_features, kid_subsets, kid_subset_size, seed=0)
    return GenerationScores(forget_class=forget_class, forget_share=shares[forget_class].item(),
                            class_shares=tuple(shares.tolist()), fid=frechet_distance(generated, kept_real_features), kid=kid)
