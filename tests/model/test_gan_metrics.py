"""Latent banks, class shares, FID and KID behave as their definitions promise."""

import numpy as np
import torch

from tests.gan_world import CPU, FORGET_CLASS
from unlearning.generation_metrics import (
    class_shares,
    frechet_distance,
    generate_images,
    kernel_inception_distance,
    latent_bank,
    predicted_classes,
)


def gaussian(size, dimension, shift=0.0, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(shift, 1.0, (size, dimension))).float()


def test_latent_bank_is_a_function_of_its_seed():
    assert torch.equal(latent_bank(16, 100, seed=3), latent_bank(16, 100, seed=3))
    assert not torch.equal(latent_bank(16, 100, seed=3), latent_bank(16, 100, seed=4))
    assert latent_bank(16, 100, seed=3).shape == (100, 16)


def test_latent_bank_does_not_depend_on_the_global_seed():
    torch.manual_seed(1)
    first = latent_bank(8, 10, seed=0)
    torch.manual_seed(2)
    assert torch.equal(first, latent_bank(8, 10, seed=0))


def test_generate_images_returns_cpu_images_in_batches(gan_world):
    bank = gan_world.bank[:300]
    images = generate_images(gan_world.gan, bank, CPU, batch_size=128)
    assert images.shape == (300, 1, 8, 8) and images.device.type == "cpu"
    assert torch.allclose(images, generate_images(gan_world.gan, bank, CPU, batch_size=512))


def test_class_shares_are_the_judges_prediction_frequencies(gan_world):
    images = gan_world.test_images[:200]
    shares = class_shares(gan_world.judge, images, CPU)
    predicted = predicted_classes(gan_world.judge, images, CPU)
    assert shares.shape == (10,)
    assert abs(shares.sum().item() - 1) < 1e-6
    assert shares[3].item() == (predicted == 3).float().mean().item()


def test_frechet_distance_is_zero_for_identical_sets_and_the_squared_mean_shift_for_shifted_gaussians():
    a = gaussian(4000, 8)
    assert abs(frechet_distance(a, a)) < 1e-6
    # Same covariance, mean shifted by 0.5 in 8 dimensions: FID = 8 * 0.25 = 2 (up to sampling noise).
    shifted = gaussian(4000, 8, shift=0.5, seed=1)
    assert 1.8 < frechet_distance(a, shifted) < 2.2
    assert frechet_distance(a, gaussian(4000, 8, seed=2)) < 0.05


def test_kernel_inception_distance_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    a, same = gaussian(1000, 8), gaussian(1000, 8, seed=1)
    mean_same, std_same = kernel_inception_distance(a, same, subsets=20, subset_size=200)
    mean_shifted, _ = kernel_inception_distance(a, gaussian(1000, 8, shift=0.5, seed=1), subsets=20, subset_size=200)
    assert abs(mean_same) < 3 * std_same + 1e-3
    assert mean_shifted > 10 * abs(mean_same)
    assert kernel_inception_distance(a, same, subsets=5, seed=9) == kernel_inception_distance(a, same, subsets=5, seed=9)


def test_kernel_inception_distance_is_the_unbiased_polynomial_mmd():
    x, y = gaussian(5, 3), gaussian(5, 3, shift=1.0, seed=1)

    def kernel(a, b):
        return (a @ b.T / 3 + 1) ** 3

    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    expected = ((k_xx.sum() - k_xx.trace()) / 20 + (k_yy.sum() - k_yy.trace()) / 20 - 2 * k_xy.mean()).item()
    mean, std = kernel_inception_distance(x, y, subsets=3, subset_size=5)
    assert abs(mean - expected) < 1e-4 * abs(expected) and std < 1e-4 * abs(expected)


def test_judged_sample_sets_split_samples_by_the_judges_verdict(gan_world):
    negatives, positives = gan_world.sample_sets(size=300)
    assert len(negatives) + len(positives) == 300 and len(negatives) > 0
    assert (predicted_classes(gan_world.judge, negatives.inputs, CPU) == FORGET_CLASS).all()
    assert (predicted_classes(gan_world.judge, positives.inputs, CPU) != FORGET_CLASS).all()
    assert negatives.name == "negatives" and positives.name == "positives"
    assert negatives.inputs.shape[1:] == (1, 8, 8)
