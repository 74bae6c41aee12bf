"""PSNR and SSIM as the verification rules rely on them."""

import math

import torch

from unlearning.metrics import mean_ssim, psnr_per_example


def test_psnr_of_a_known_error():
    targets = torch.full((2, 3, 8, 8), 0.5)
    outputs = targets + 0.1  # MSE 0.01 -> 20 dB
    assert torch.allclose(psnr_per_example(outputs, targets), torch.tensor([20.0, 20.0]), atol=1e-4)


def test_psnr_is_per_example():
    targets = torch.zeros(2, 3, 4, 4)
    outputs = torch.stack([torch.full((3, 4, 4), 0.1), torch.full((3, 4, 4), 0.01)])
    first, second = psnr_per_example(outputs, targets).tolist()
    assert math.isclose(second - first, 20.0, abs_tol=1e-3)


def test_outputs_are_clamped_to_the_valid_range():
    targets = torch.ones(1, 3, 4, 4)
    assert psnr_per_example(targets + 5.0, targets).item() > 90  # clamped to 1.0: a perfect match


def test_ssim_is_one_for_identical_images_and_lower_for_noise():
    torch.manual_seed(0)
    images = torch.rand(3, 3, 16, 16)
    assert mean_ssim(images, images) > 0.999
    assert mean_ssim((images + 0.3 * torch.randn_like(images)).clamp(0, 1), images) < 0.8
