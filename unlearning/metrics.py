"""Restoration quality per example set: PSNR and SSIM of the model's output and of doing nothing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from skimage.metrics import structural_similarity
from torch import nn

from unlearning.data.pairs import PairSet
from unlearning.device import autocast


@dataclass(frozen=True)
class RestorationScores:
    """Mean PSNR (dB) and SSIM of the model's output, and of the degraded input left as is."""

    psnr: float
    ssim: float
    input_psnr: float
    input_ssim: float


def psnr_per_example(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    mse = (outputs.clamp(0, 1) - targets).pow(2).flatten(1).mean(dim=1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def mean_ssim(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    outputs_np = outputs.clamp(0, 1).cpu().numpy().astype(np.float64)
    targets_np = targets.cpu().numpy().astype(np.float64)
    return float(
        np.mean([structural_similarity(o, t, channel_axis=0, data_range=1.0) for o, t in zip(outputs_np, targets_np)])
    )


@torch.no_grad()
def predict(model: nn.Module, inputs: torch.Tensor, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    model.eval()
    outputs = []
    for start in range(0, inputs.shape[0], batch_size):
        with autocast(device):
            outputs.append(model(inputs[start : start + batch_size].to(device)).float().cpu())
    return torch.cat(outputs)


def score_restoration(model: nn.Module, pairs: PairSet, device: torch.device) -> RestorationScores:
    return score_outputs(predict(model, pairs.inputs, device), pairs)


def score_outputs(outputs: torch.Tensor, pairs: PairSet) -> RestorationScores:
    """Scores of outputs already predicted for `pairs` (so one prediction serves several reports)."""
    return RestorationScores(
        psnr=float(psnr_per_example(outputs, pairs.targets).mean()),
        ssim=mean_ssim(outputs, pairs.targets),
        input_psnr=float(psnr_per_example(pairs.inputs, pairs.targets).mean()),
        input_ssim=mean_ssim(pairs.inputs, pairs.targets),
    )


def accuracy(model: nn.Module, pairs: PairSet, device: torch.device) -> float:
    """Share of examples whose arg-max logit is the label; NaN for an empty set."""
    if len(pairs) == 0:
        return float("nan")
    predictions = predict(model, pairs.inputs, device).argmax(dim=1)
    return float((predictions == pairs.targets.long()).float().mean())
