"""Tiny, seeded worlds for the tests.

Every pytest worker gets its own ERASURE_HOME (MLflow store, Prefect home, DVC remote) in a temp
directory, set before `pipelines` is imported, so tests never touch the developer's `.erasure/`.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

_WORKER_HOME = Path(tempfile.mkdtemp(prefix="erasure-test-"))
os.environ["ERASURE_HOME"] = str(_WORKER_HOME)
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_WORKER_HOME / 'mlflow.db'}"
os.environ["PREFECT_HOME"] = str(_WORKER_HOME / "prefect")
os.environ.pop("PREFECT_API_URL", None)
# The CLI restarts itself (exec) to enter the reproducible numerics: inside a pytest worker that would replace
# the worker. Tests run the CLI in-process with native numerics; the reproducible path runs in subprocesses
# (tests/pipeline/test_audit_reproduce.py, tests/code/test_numerics.py), which set it back.
os.environ["ERASURE_NUMERICS"] = "native"
# One thread per process, inherited by the CLI, torchrun and Dask children: on 2 busy cores two threads
# per process measured ~10x slower than one (issue 11). Set before torch is imported.
TORCH_THREADS = 1
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = str(TORCH_THREADS)

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(TORCH_THREADS)

from unlearning.data.digits import DigitsDataConfig, build_digits_sets  # noqa: E402
from unlearning.data.pairs import PairSet, decode_arrays  # noqa: E402
from unlearning.data.restoration import RestorationDataConfig, build_restoration_sets, set_path  # noqa: E402
from unlearning.models import build_model  # noqa: E402
from unlearning.train import TrainConfig, train_restorer  # noqa: E402

# Measured on seeds 0-5 (2-core CPU): 400 steps train a width-8 U-Net to restore haze 4.2-7.3 dB
# above the degraded input in ~5 s; everything below leans on that.
TINY_DATA = RestorationDataConfig(patch_size=16, train_patches_per_degradation=128, eval_patches_per_degradation=32)
TINY_ARCHITECTURE = {"width": 8, "levels": 2}
TINY_TRAINING = TrainConfig(steps=400, batch_size=16, learning_rate=3e-3)
CPU = torch.device("cpu")


@dataclass
class TinyWorld:
    files: dict[str, bytes]
    model: torch.nn.Module

    def pairs(self, split: str, degradation: str) -> PairSet:
        raw = self.files[set_path(split, degradation)]
        return PairSet.from_arrays(degradation, decode_arrays(raw, degradation)[0])

    def fresh_model(self) -> torch.nn.Module:
        return copy.deepcopy(self.model)


def make_world(seed: int) -> TinyWorld:
    config = RestorationDataConfig(**{**TINY_DATA.__dict__, "seed": seed})
    files = build_restoration_sets(config)
    # Seed the initial weights too: otherwise they depend on whatever the worker ran before.
    torch.manual_seed(seed)
    world = TinyWorld(files, build_model("restorer-unet", TINY_ARCHITECTURE))
    train_sets = [world.pairs("train", name) for name in ("noise", "rain", "haze")]
    training = TrainConfig(**{**TINY_TRAINING.__dict__, "seed": seed})
    train_restorer(world.model, train_sets, training, CPU, show_progress=False)
    return world


@pytest.fixture(scope="session")
def tiny_world() -> TinyWorld:
    return make_world(seed=0)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


DVC = (sys.executable, "-m", "dvc")


def dvc(repo: Path, *args: str) -> None:
    subprocess.run([*DVC, *args], cwd=repo, check=True, capture_output=True, text=True)


def commit_data(repo: Path, files: dict[str, bytes], message: str) -> str:
    """Write `files` under repo/data, `dvc add` + push them, commit; returns the commit sha."""
    for relative, raw in files.items():
        path = repo / "data" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
    dvc(repo, "add", "-q", "data")
    dvc(repo, "push", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="session")
def data_repo(tiny_world: TinyWorld, tmp_path_factory) -> Path:
    """A git + DVC repository with the tiny restoration data and the digits sets committed and pushed
    to a local DVC remote."""
    repo = init_data_repo(tmp_path_factory.mktemp("data-repo"))
    commit_data(repo, tiny_world.files | build_digits_sets(DigitsDataConfig()), "tiny restoration data and digits")
    return repo


def init_data_repo(repo: Path) -> Path:
    """An empty git + DVC repository at `repo` with a local DVC remote beside it."""
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "tests@erasure.invalid")
    git(repo, "config", "user.name", "erasure tests")
    dvc(repo, "init", "-q")
    dvc(repo, "config", "core.analytics", "false")
    dvc(repo, "remote", "add", "-d", "local", str(repo.parent / f"{repo.name}-remote"))
    return repo
