"""Train the classifier on the repository's training table and log it the usual way: plain PyTorch + MLflow.

The model is logged with `mlflow.pytorch.log_model` (the pytorch flavor, pickled, with a signature and an
input example) and its state dict beside it (`mlflow.pytorch.log_state_dict`), then registered as `acme-wine`.
"""

import argparse
from pathlib import Path

import mlflow
import pandas as pd
import torch
from mlflow.models import infer_signature
from torch import nn

from acme_wine.data import LABEL, RECORD_ID
from acme_wine.model import WineClassifier


def train(table: pd.DataFrame, seed: int = 0, epochs: int = 300) -> WineClassifier:
    torch.manual_seed(seed)
    features = torch.tensor(table.drop(columns=[LABEL, RECORD_ID]).to_numpy(), dtype=torch.float32)
    labels = torch.tensor(table[LABEL].to_numpy(), dtype=torch.int64)
    model = WineClassifier(in_features=features.shape[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(features), labels).backward()
        optimizer.step()
    return model.eval()


def train_and_register(repo: Path, name: str = "acme-wine", seed: int = 0) -> str:
    """Train on `repo`'s data/train.parquet, log, register; returns the new version."""
    table = pd.read_parquet(repo / "data" / "train.parquet")
    model = train(table, seed)
    example = table.drop(columns=[LABEL, RECORD_ID]).head(4).to_numpy().astype("float32")
    with torch.no_grad():
        signature = infer_signature(example, model(torch.from_numpy(example)).numpy())
    mlflow.set_experiment("acme-wine-training")
    with mlflow.start_run():
        mlflow.log_params({"epochs": 300, "seed": seed})
        logged = mlflow.pytorch.log_model(model, name="model", serialization_format="pickle", signature=signature,
                                          input_example=example, pip_requirements=["torch==2.13.0", "acme-wine"])
        mlflow.pytorch.log_state_dict(model.state_dict(), artifact_path="state_dict")
    return mlflow.register_model(logged.model_uri, name).version


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    print(f"registered acme-wine version {train_and_register(arguments.repo, seed=arguments.seed)}")
