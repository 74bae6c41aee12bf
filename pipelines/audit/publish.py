"""Prefect artifacts per request: the verdict and evidence in the Prefect UI, linking the MLflow run."""

from __future__ import annotations

import re

from pipelines.adapters.settings import Settings
from pipelines.audit.record import AuditRecord


def artifact_key(request_id: str) -> str:
    """Prefect keys allow lowercase letters, digits and dashes only."""
    return "audit-" + re.sub(r"[^a-z0-9-]+", "-", request_id.lower()).strip("-")


def mlflow_run_link(settings: Settings, record: AuditRecord) -> str:
    from pipelines.adapters.registry import client

    if not record.mlflow_run_id:
        return "no MLflow run"
    uri = settings.tracking_uri
    experiment = client(settings).get_run(record.mlflow_run_id).info.experiment_id
    if uri.startswith(("http://", "https://")):
        return f"[MLflow run {record.mlflow_run_id}]({uri.rstrip('/')}/#/experiments/{experiment}/runs/{record.mlflow_run_id})"
    return f"MLflow run `{record.mlflow_run_id}` (experiment {experiment}; `mlflow ui --backend-store-uri {uri}`)"


def markdown_summary(settings: Settings, record: AuditRecord) -> str:
    chain = record.chain
    lines = [
        f"# Deletion request `{record.request_id}`: **{record.status}**",
        "",
        f"- model: `{record.model.name}` version {record.model.version_before} -> {record.model.version_after or '-'}"
        f" (promoted: {record.model.promoted})",
        f"- forget set: {record.forget_data.get('examples')} examples, sha256 `{record.forget_data.get('sha256')}`",
        f"- method: `{record.method.get('name')}`",
        f"- audit chain: `{chain.model}` #{chain.sequence}" if chain else "- audit chain: not linked",
        f"- signing key: `{record.signing.key_fingerprint}` ({record.signing.key_source})" if record.signing else "",
        f"- evidence: {mlflow_run_link(settings, record)}",
    ]
    if record.failed_stage:
        lines.append(f"- stopped at stage `{record.failed_stage}`: {record.error}")
    lines += ["", "## Verdict", *[f"- {reason}" for reason in record.verdict.get("reasons", [])]]
    lines += ["", f"Verify offline: `erasure audit verify --model {record.model.name}`"]
    return "\n".join(line for line in lines if line is not None)


def metric_rows(record: AuditRecord) -> list[dict]:
    return [
        {
            "metric": m.name,
            "value": round(m.value, 4),
            "stderr": None if m.stderr is None else round(m.stderr, 4),
            "threshold": m.threshold,
            "passed": m.passed,
        }
        for m in record.metrics
    ]


def publish_prefect_artifacts(settings: Settings, record: AuditRecord) -> None:
    """Markdown + table artifacts in the current flow run. A failure here is logged, never fatal:
    the audit record is already stored and the request's outcome must not change."""
    from prefect import get_run_logger
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    key = artifact_key(record.request_id)
    try:
        create_markdown_artifact(
            markdown=markdown_summary(settings, record), key=key, description=f"audit: {record.status}"
        )
        if record.metrics:
            create_table_artifact(table=metric_rows(record), key=f"{key}-metrics", description="evidence")
    except Exception as error:  # noqa: BLE001 - see docstring
        get_run_logger().warning("Prefect artifact %s not published: %s: %s", key, type(error).__name__, error)
