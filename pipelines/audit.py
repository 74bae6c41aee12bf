"""The audit record: what was asked, what ran on which versions, the evidence, and the verdict.

Written for every outcome (passed, rejected, failed) to an MLflow run of the audit experiment and
to a local copy under ERASURE_HOME/audit. It holds hashes and counts of the forget data, never
the data itself.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from pipelines.settings import PROJECT_ROOT, Settings

SCHEMA_VERSION = "1.0"
RECORD_ARTIFACT = "audit/record.json"
TRACKED_PACKAGES = ("torch", "mlflow", "prefect", "dvc", "great-expectations", "onnx", "onnxruntime", "numpy")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class MetricEvidence(BaseModel):
    name: str
    value: float
    threshold: float | None = None
    comparator: str | None = None
    passed: bool | None = None


class ModelEvidence(BaseModel):
    name: str | None = None
    alias: str | None = None
    version_before: str | None = None
    weights_sha256_before: str | None = None
    version_after: str | None = None
    weights_sha256_after: str | None = None
    promoted: bool = False


class AuditRecord(BaseModel):
    schema_version: str = SCHEMA_VERSION
    request_id: str
    status: Literal["running", "passed", "rejected", "failed"] = "running"
    failed_stage: str | None = None
    error: str | None = None
    started_at: str = Field(default_factory=now)
    finished_at: str | None = None
    requested_by: str | None = None
    reason: str | None = None
    request_sha256: str | None = None
    model: ModelEvidence = Field(default_factory=ModelEvidence)
    forget_data: dict[str, Any] = Field(default_factory=dict)
    retain_data: list[dict[str, Any]] = Field(default_factory=list)
    evaluation_data: list[dict[str, Any]] = Field(default_factory=list)
    validation: dict[str, Any] | None = None
    method: dict[str, Any] = Field(default_factory=dict)
    unlearning: dict[str, Any] = Field(default_factory=dict)
    metrics: list[MetricEvidence] = Field(default_factory=list)
    verdict: dict[str, Any] = Field(default_factory=dict)
    export: dict[str, Any] | None = None
    code_version: str = Field(default_factory=lambda: code_version())
    packages: dict[str, str] = Field(default_factory=lambda: package_versions())
    device: str | None = None
    mlflow_run_id: str | None = None


def code_version() -> str:
    """The git commit of the Erasure checkout that ran, with `+dirty` when it had local changes."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"


def package_versions() -> dict[str, str]:
    versions = {}
    for package in TRACKED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def local_record_path(settings: Settings, request_id: str) -> Path:
    return settings.audit_dir / f"{request_id}.json"


def write_record(settings: Settings, record: AuditRecord) -> Path:
    """Log the record to its MLflow run (tags for search, JSON artifact) and keep a local copy."""
    from pipelines.registry import client

    document = record.model_dump_json(indent=2)
    path = local_record_path(settings, record.request_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document)
    if record.mlflow_run_id:
        mlflow_client = client(settings)
        for key, value in {
            "erasure.request_id": record.request_id,
            "erasure.status": record.status,
            "erasure.model": record.model.name or "",
            "erasure.version_before": record.model.version_before or "",
            "erasure.version_after": record.model.version_after or "",
        }.items():
            mlflow_client.set_tag(record.mlflow_run_id, key, value)
        with tempfile.TemporaryDirectory() as scratch:
            staged = Path(scratch) / Path(RECORD_ARTIFACT).name
            staged.write_text(document)
            mlflow_client.log_artifact(record.mlflow_run_id, str(staged), str(Path(RECORD_ARTIFACT).parent))
        mlflow_client.set_terminated(record.mlflow_run_id, "FINISHED" if record.status == "passed" else "FAILED")
    return path


def read_record(settings: Settings, request_id: str) -> AuditRecord | None:
    """The record of `request_id` from MLflow, falling back to the local copy."""
    from pipelines.registry import client

    mlflow_client = client(settings)
    experiment = mlflow_client.get_experiment_by_name(settings.audit_experiment)
    if experiment is not None:
        runs = mlflow_client.search_runs(
            [experiment.experiment_id], filter_string=f"tags.`erasure.request_id` = '{request_id}'", max_results=1
        )
        if runs:
            import mlflow

            with tempfile.TemporaryDirectory() as scratch:
                path = mlflow.artifacts.download_artifacts(
                    run_id=runs[0].info.run_id, artifact_path=RECORD_ARTIFACT, dst_path=scratch
                )
                return AuditRecord.model_validate_json(Path(path).read_text())
    path = local_record_path(settings, request_id)
    return AuditRecord.model_validate_json(path.read_text()) if path.exists() else None


def list_records(settings: Settings) -> list[dict[str, str]]:
    """One summary row per audited request, newest first, from the audit experiment's run tags."""
    from pipelines.registry import client

    mlflow_client = client(settings)
    experiment = mlflow_client.get_experiment_by_name(settings.audit_experiment)
    if experiment is None:
        return []
    rows = []
    for run in mlflow_client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"]):
        tags = run.data.tags
        rows.append(
            {
                "request_id": tags.get("erasure.request_id", ""),
                "status": tags.get("erasure.status", ""),
                "model": tags.get("erasure.model", ""),
                "version_before": tags.get("erasure.version_before", ""),
                "version_after": tags.get("erasure.version_after", ""),
                "started": datetime.fromtimestamp(run.info.start_time / 1000, timezone.utc).isoformat(timespec="seconds"),
                "run_id": run.info.run_id,
            }
        )
    return rows


def to_json(record: AuditRecord) -> str:
    return json.dumps(record.model_dump(), indent=2)
