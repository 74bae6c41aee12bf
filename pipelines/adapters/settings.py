"""Where Erasure keeps its state, and which servers it talks to.

Embedded defaults live under `.erasure/` (or $ERASURE_HOME): an MLflow sqlite store and artifacts,
Prefect's home (ephemeral server), the DVC local remote. MLFLOW_TRACKING_URI and PREFECT_API_URL set
by the user win over every default.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]

QUIET_ENVIRONMENT = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "GIT_PYTHON_REFRESH": "quiet",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # The ephemeral Prefect server's default 20 s start budget is too tight on a busy 2-core machine.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ERASURE_", extra="ignore")

    home: Path = PROJECT_ROOT / ".erasure"
    # The git + DVC repository that holds `data.dvc`; requests name paths and revisions inside it.
    data_repo: Path = PROJECT_ROOT
    audit_experiment: str = "erasure-audit"
    training_experiment: str = "erasure-training"
    # How long a run waits for another run of the same request or model (pipelines/operations/locks.py).
    lock_timeout_seconds: float = 3600.0
    # The data repository's branch that data erasures are committed on; None: the branch checked out there.
    data_branch: str | None = None
    # false: promoted requests leave the training data as it is (the record says the erasure was skipped).
    erase_data: bool = True
    # The deployment secret that keys the commitments of erased record ids (pipelines/erasure/commitment.py); unset:
    # a key generated on first use under `home` (commitment.key, mode 0600).
    commitment_key: str | None = None
    # CPU numerics of the commands that compute (`request run`, `inbox run`, `audit reproduce`): reproducible
    # pins them so the unlearned weights are the same bytes on every AVX2 CPU (unlearning/numerics.py); native
    # lets each machine pick its fastest kernels. Training (`model train`) is always reproducible.
    numerics: Literal["reproducible", "native"] = "reproducible"

    @cached_property
    def tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        return self.home / "mlartifacts"

    @property
    def dvc_remote(self) -> Path:
        return self.home / "dvc-remote"

    @property
    def commitment_key_file(self) -> Path:
        return self.home / "commitment.key"

    @property
    def onnx_graphs(self) -> Path:
        """ONNX graphs exported before, without their weights: a later process exports that architecture again
        without torch.export (pipelines/adapters/export.py)."""
        return self.home / "onnx-graphs"

    @property
    def audit_dir(self) -> Path:
        """Local copies of audit records, for reviewers without MLflow access."""
        return self.home / "audit"

    def export_environment(self) -> None:
        """Set the tools' environment before they are imported; values the user already set win."""
        self.home.mkdir(parents=True, exist_ok=True)
        for key, value in QUIET_ENVIRONMENT.items():
            os.environ.setdefault(key, value)
        os.environ.setdefault("MLFLOW_TRACKING_URI", self.tracking_uri)
        os.environ.setdefault("PREFECT_HOME", str(self.home / "prefect"))


def load_settings() -> Settings:
    return Settings()
