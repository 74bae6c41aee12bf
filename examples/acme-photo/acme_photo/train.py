"""Train the restorer on the repository's hazy and noisy photo folders and log it the usual way: plain
PyTorch + MLflow.

The model is logged with `mlflow.pytorch.log_model` (the pytorch flavor, pickled, with a signature and an
input example) and its state dict beside it (`mlflow.pytorch.log_state_dict`), then registered as `acme-photo`.
"""

import argparse
from pathlib import Path

import mlflow
import numpy as np
import torch
from mlflow.models import infer_signature
from PIL import Image

from acme_photo.model import ResidualDenoiser

TRAINED_ON = ("haze", "noise")
STEPS, BATCH, LEARNING_RATE = 800, 16, 3e-3


def read_pairs(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(degraded, clean) float tensors (N, 3, H, W) in [0, 1] from a folder of degraded/ and clean/ PNGs."""
    names = sorted(path.name for path in (folder / "degraded").glob("*.png"))

    def load(sub: str) -> torch.Tensor:
        pixels = np.stack([np.asarray(Image.open(folder / sub / name).convert("RGB")) for name in names])
        return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255.0

    return load("degraded"), load("clean")


def train(degraded: torch.Tensor, clean: torch.Tensor, seed: int = 0, steps: int = STEPS) -> ResidualDenoiser:
    torch.manual_seed(seed)
    model = ResidualDenoiser()
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    order = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = torch.randint(0, len(degraded), (BATCH,), generator=order)
        optimizer.zero_grad()
        torch.nn.functional.l1_loss(model(degraded[batch]), clean[batch]).backward()
        optimizer.step()
        schedule.step()
    return model.eval()


def training_pairs(repo: Path) -> tuple[torch.Tensor, torch.Tensor]:
    sets = [read_pairs(repo / "data" / "train" / name) for name in TRAINED_ON]
    return torch.cat([d for d, _ in sets]), torch.cat([c for _, c in sets])


def train_and_register(repo: Path, name: str = "acme-photo", seed: int = 0) -> str:
    """Train on `repo`'s data/train/{haze,noise} folders, log, register; returns the new version."""
    degraded, clean = training_pairs(repo)
    model = train(degraded, clean, seed)
    example = degraded[:1].numpy()  # one 1x3x32x32 image
    with torch.no_grad():
        signature = infer_signature(example, model(torch.from_numpy(example)).numpy())
    mlflow.set_experiment("acme-photo-training")
    with mlflow.start_run():
        mlflow.log_params({"steps": STEPS, "batch_size": BATCH, "learning_rate": LEARNING_RATE, "seed": seed})
        logged = mlflow.pytorch.log_model(model, name="model", serialization_format="pickle", signature=signature,
                                          input_example=example, pip_requirements=["torch==2.13.0", "acme-photo"])
        mlflow.pytorch.log_state_dict(model.state_dict(), artifact_path="state_dict")
    return mlflow.register_model(logged.model_uri, name).version


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    print(f"registered acme-photo version {train_and_register(arguments.repo, seed=arguments.seed)}")
