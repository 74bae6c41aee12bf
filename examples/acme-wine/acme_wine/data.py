"""Acme's data repository: scikit-learn's bundled wine table as Parquet, tracked by DVC in a git repo of its own.

Features are scaled to [0, 1] with the training split's range (clipped), so a held-out row looks like a
training row to the classifier and to the forget set's checks. Every row has a stable `record_id`.
"""

import argparse
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_wine

LABEL, RECORD_ID = "cultivar", "record_id"
WITHDRAWN_CULTIVAR = 2  # the supplier of cultivar 2's measurements withdrew its licence: the example request


def tables(seed: int = 0) -> dict[str, pd.DataFrame]:
    wine = load_wine(as_frame=True)
    frame = wine.data.rename(columns=lambda name: name.replace("/", "_"))
    frame.insert(0, RECORD_ID, np.arange(1000, 1000 + len(frame)))
    frame[LABEL] = wine.target.astype("int64")
    test = frame.groupby(LABEL, group_keys=False).sample(frac=0.3, random_state=seed)
    train = frame.drop(test.index)
    features = [c for c in frame.columns if c not in (LABEL, RECORD_ID)]
    low, high = train[features].min(), train[features].max()
    for split in (train, test):
        split[features] = ((split[features] - low) / (high - low)).clip(0, 1).astype("float32")
    withdrawn = train[LABEL] == WITHDRAWN_CULTIVAR
    return {
        "train.parquet": train,
        "test.parquet": test,
        f"train-cultivar-{WITHDRAWN_CULTIVAR}.parquet": train[withdrawn],
        f"test-cultivar-{WITHDRAWN_CULTIVAR}.parquet": test[test[LABEL] == WITHDRAWN_CULTIVAR],
        "test-kept.parquet": test[test[LABEL] != WITHDRAWN_CULTIVAR],
    }


def _run(repo: Path, *command: str) -> None:
    subprocess.run(command, cwd=repo, check=True, capture_output=True)


def build_repo(repo: Path, remote: Path) -> None:
    """A git + DVC repository at `repo` holding data/*.parquet (one commit), pushed to the local `remote`."""
    repo.mkdir(parents=True, exist_ok=True)
    _run(repo, "git", "init", "-q", "-b", "main")
    _run(repo, "git", "config", "user.email", "data@acme.example")
    _run(repo, "git", "config", "user.name", "Acme data team")
    _run(repo, "dvc", "init", "-q")
    _run(repo, "dvc", "config", "core.analytics", "false")
    _run(repo, "dvc", "remote", "add", "-d", "local", str(remote))
    (repo / "data").mkdir(exist_ok=True)
    for name, frame in tables().items():
        frame.to_parquet(repo / "data" / name, index=False)
    _run(repo, "dvc", "add", "-q", "data")
    _run(repo, "git", "add", "data.dvc", ".gitignore", ".dvc/config")
    _run(repo, "git", "commit", "-q", "-m", "wine measurements, scaled, as Parquet")
    _run(repo, "dvc", "push", "-q")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--remote", type=Path, required=True)
    arguments = parser.parse_args()
    build_repo(arguments.repo, arguments.remote)
