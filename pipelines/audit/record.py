"""The audit record schema: what was asked, what ran on which versions, the evidence, and the verdict.

One record per request and outcome (passed, rejected, failed). It holds hashes and counts of the forget
data, never the data; with `privacy.file_names == "hashed"` the forget set's path is a hashed id too.
The stored form is `canonical_bytes(record)`: its sha256 is what the hash chain and attestations bind.
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.adapters.settings import PROJECT_ROOT

# 2.0: hash chain, signing, evidence with uncertainty, privacy. 2.1: attempt (crash recovery) and coalesced
# (shared unlearning runs), both optional so 2.0 records still validate. 2.2: training_data (lineage),
# data_erasure, and events (event, subject, purge) chained after a request's record; all optional. 2.3:
# reproduction (numerics, unlearned weights' sha256, helper versions, the request), optional.
# Bump the major on any breaking change.
SCHEMA_VERSION = "2.3"
TRACKED_PACKAGES = ("torch", "mlflow", "prefect", "dvc", "great-expectations", "onnx", "onnxruntime", "numpy")
Status = Literal["running", "passed", "rejected", "failed"]


class AuditRecordError(ValueError):
    """A record does not satisfy the schema's rules for its status."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def hashed_file_id(path: str) -> str:
    """The id that replaces a file name when the request asks for it: unlinkable without the name."""
    return "file-" + sha256_text(path)[:16]


class MetricEvidence(BaseModel):
    name: str = Field(description="what was measured: '<stage>.<set>.<metric>' or a verdict check name")
    value: float
    threshold: float | None = Field(None, description="the request's threshold, for verdict checks")
    comparator: str | None = Field(None, description="value must be `comparator` threshold to pass")
    passed: bool | None = None
    stderr: float | None = Field(None, description="standard error of the mean over the evaluation examples")
    examples: int | None = Field(None, description="evaluation examples the value is a mean over")


class ModelEvidence(BaseModel):
    name: str | None = None
    alias: str | None = None
    version_before: str | None = None
    weights_sha256_before: str | None = None
    version_after: str | None = None
    weights_sha256_after: str | None = None
    promoted: bool = False


class Evidence(BaseModel):
    """What the verdict rests on and how sure it is."""

    metrics_used: list[str] = Field(default_factory=list, description="metric names the verdict checks read")
    seeds: dict[str, int] = Field(default_factory=dict, description="seeds that make the run repeatable")
    evaluation_examples: dict[str, int] = Field(default_factory=dict, description="held-out examples per set")
    mia: dict[str, Any] | None = Field(None, description="membership-inference setting; null where not applicable")
    uncertainty: str = Field(
        "stderr = sample standard deviation / sqrt(examples) of per-example PSNR (dB); "
        "a check passes on its mean value, so a margin under ~2 stderr is weak evidence",
        description="how to read the stderr fields",
    )


class ChainLink(BaseModel):
    """This record's place in the per-model hash chain (see pipelines.audit.chain)."""

    model: str = Field(description="chain name: the registered model, or '_unattributed' when none was named")
    sequence: int = Field(ge=0, description="0 for the model's first record")
    previous_record_sha256: str | None = Field(description="sha256 of the previous record's stored bytes")


class SigningInfo(BaseModel):
    algorithm: Literal["ed25519"] = "ed25519"
    key_fingerprint: str = Field(description="'sha256:' + hex sha256 of the raw 32-byte Ed25519 public key")
    key_source: Literal["env", "file", "generated"] = Field(
        description="env: ERASURE_SIGNING_KEY held the PEM; file: a configured path; generated: local demo key"
    )


class Privacy(BaseModel):
    file_names: Literal["plain", "hashed"] = Field(
        "plain", description="hashed: the forget set's path is replaced by 'file-' + sha256(path)[:16]"
    )


class Coalesced(BaseModel):
    """Set when the request was unlearned together with others in one run (pipelines/operations/coalesce.py)."""

    requests: list[str] = Field(description="every request unlearned in the shared run, this one included, in order")
    shared_run_id: str = Field(description="MLflow run that logged the shared model and its ONNX export")
    forget_examples: int = Field(description="forget examples in the shared run: the union of the requests' forget sets")


class AuditRecord(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                {
                    "if": {"properties": {"status": {"enum": ["rejected", "failed"]}}},
                    "then": {"properties": {"failed_stage": {"type": "string"}, "error": {"type": "string"}}},
                },
                {
                    "if": {"properties": {"status": {"const": "passed"}}},
                    "then": {"properties": {"model": {"properties": {"promoted": {"const": True}}}}},
                },
            ]
        }
    )

    schema_version: str = SCHEMA_VERSION
    request_id: str
    status: Status = "running"
    failed_stage: str | None = Field(None, description="the stage that refused or failed the request")
    error: str | None = None
    started_at: str = Field(default_factory=now)
    finished_at: str | None = None
    requested_by: str | None = None
    reason: str | None = None
    request_sha256: str | None = Field(None, description="sha256 of the request file's bytes")
    model: ModelEvidence = Field(default_factory=ModelEvidence)
    forget_data: dict[str, Any] = Field(default_factory=dict, description="provenance and hashes, never content")
    retain_data: list[dict[str, Any]] = Field(default_factory=list)
    evaluation_data: list[dict[str, Any]] = Field(default_factory=list)
    validation: dict[str, Any] | None = None
    method: dict[str, Any] = Field(default_factory=dict)
    unlearning: dict[str, Any] = Field(default_factory=dict)
    metrics: list[MetricEvidence] = Field(default_factory=list)
    evidence: Evidence = Field(default_factory=Evidence)
    verdict: dict[str, Any] = Field(default_factory=dict)
    export: dict[str, Any] | None = None
    privacy: Privacy = Field(default_factory=Privacy)
    chain: ChainLink | None = None
    signing: SigningInfo | None = None
    code_version: str = Field(default_factory=lambda: code_version())
    packages: dict[str, str] = Field(default_factory=lambda: package_versions())
    device: str | None = None
    mlflow_run_id: str | None = None
    attempt: int = Field(
        1, ge=1, description="how many times this request's audit run was started: above 1 after a crash and a rerun"
    )
    coalesced: Coalesced | None = Field(None, description="null unless the request shared its unlearning run")
    event: Literal["request", "data-erasure", "data-purge"] = Field(
        "request", description="request: a deletion request's outcome; data-erasure (a retried erasure commit) and "
        "data-purge (objects deleted from DVC storage): events about an earlier request, named in `subject`")
    subject: dict[str, Any] | None = Field(None, description="for an event: the request it concerns and its record's sha256")
    training_data: dict[str, Any] | None = Field(
        None, description="lineage of version_before: data repository commit and DVC paths with their md5s")
    data_erasure: dict[str, Any] | None = Field(
        None, description="the training data rewritten without the forgotten examples: branch, commit, files' md5s "
        "before/after, keyed digests of the forgotten examples; status committed, unchanged, skipped or failed")
    purge: dict[str, Any] | None = Field(None, description="for a data-purge event: the object md5s deleted, and where")
    reproduction: dict[str, Any] | None = Field(
        None, description="what `erasure audit reproduce` re-runs the unlearning from, beside the model and data "
        "fields: numerics (CPU kernels, threads, device), the unlearned weights' sha256, the helper model versions "
        "the request's aliases named, and the request (null, with the reason, where it holds record ids or "
        "file names to hash)")

    @model_validator(mode="after")
    def _outcome_is_complete(self) -> "AuditRecord":
        if self.status in ("rejected", "failed") and not (self.failed_stage and self.error):
            raise AuditRecordError(f"status {self.status!r} needs failed_stage and error (got {self.failed_stage!r})")
        if self.status == "passed" and not self.model.promoted and self.event == "request":
            raise AuditRecordError("status 'passed' needs model.promoted = true")
        return self


def canonical_bytes(record: AuditRecord) -> bytes:
    """The exact bytes stored and hashed: sorted keys, 2-space indent, UTF-8, trailing newline."""
    return (json.dumps(record.model_dump(mode="json"), sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def field_digests(document: dict[str, Any]) -> dict[str, str]:
    """sha256 of each top-level field's compact canonical JSON: lets `verify` name the edited field."""
    return {
        key: sha256_text(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
        for key, value in document.items()
    }


def json_schema() -> dict[str, Any]:
    schema = AuditRecord.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"erasure.audit-record/{SCHEMA_VERSION}"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


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
    return dict(_imported_package_versions())


# Read once per process (the metadata scan cost ~8 ms a record): an upgrade on disk while a worker runs
# does not change the code it has already imported, which is what its records must name.
@functools.lru_cache(maxsize=1)
def _imported_package_versions() -> dict[str, str]:
    versions = {}
    for package in TRACKED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
