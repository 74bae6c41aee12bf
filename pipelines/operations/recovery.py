"""Crash recovery: a request killed mid-flow (SIGKILL, OOM, lost node) is finished by running it again.

Running the same request file again after a crash:
- resumes the killed attempt's MLflow audit run (tagged with the request id and sha256 when it was made,
  no record yet), so the request keeps one run and gets exactly one audit record, with `attempt` counted;
- reuses the unlearned model from Prefect's persisted result of the `unlearn` task, so the weights (and
  their sha256) are the killed attempt's even where unlearning is not bit-reproducible (GPU);
- reuses the version the killed attempt registered with those weights (`registry.log_and_register`);
- starts from the version the killed attempt started from, even if it had already moved the alias
  (`registry.load_request_base`).
The alias moves only after verification and export, so it never points at an unverified version, and a
failure between registration and the alias move rolls back (Prefect transaction): the candidate is tagged
`failed`.
"""

from __future__ import annotations

import hashlib
import re

from mlflow.entities import Run
from prefect.context import TaskRunContext
from prefect.transactions import Transaction, get_transaction

from pipelines.adapters import registry
from pipelines.adapters.settings import Settings, load_settings
from pipelines.audit.chain import TAG_RECORD_SHA

TAG_REQUEST_SHA = "erasure.request_sha256"
TAG_ATTEMPT = "erasure.attempt"
# Ids that are safe inside an MLflow filter string; any other (unparsable request) is never resumed.
_FILTERABLE = re.compile(r"^[\w.@-]+$")


def audit_run(settings: Settings, request_id: str, request_sha256: str) -> Run:
    """The MLflow run for this attempt's audit record: a killed attempt's run of the same request file
    (one with no record yet), resumed, or a new run. Callers hold the request's lock (pipelines/operations/locks.py),
    so a run without a record is never one still in progress."""
    mlflow_client = registry.client(settings)
    experiment_id = registry.ensure_experiment(settings, settings.audit_experiment)
    if _FILTERABLE.match(request_id):
        runs = mlflow_client.search_runs(
            [experiment_id],
            filter_string=f"tags.`erasure.request_id` = '{request_id}' and tags.`{TAG_REQUEST_SHA}` = '{request_sha256}'",
            order_by=["attributes.start_time DESC"],
        )
        unfinished = [run for run in runs if TAG_RECORD_SHA not in run.data.tags]
        if unfinished:
            run_id = unfinished[0].info.run_id
            attempt = int(unfinished[0].data.tags.get(TAG_ATTEMPT, "1")) + 1
            mlflow_client.set_tag(run_id, TAG_ATTEMPT, str(attempt))
            mlflow_client.update_run(run_id, status="RUNNING")
            return mlflow_client.get_run(run_id)
    tags = {"erasure.request_id": request_id, "erasure.status": "running", TAG_REQUEST_SHA: request_sha256, TAG_ATTEMPT: "1"}
    return mlflow_client.create_run(experiment_id, run_name=request_id, tags=tags)


def attempt(run: Run) -> int:
    return int(run.data.tags.get(TAG_ATTEMPT, "1"))


def cache_digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def unlearn_cache_key(context: TaskRunContext, parameters: dict) -> str:
    """Same request content, same base weights, same data bytes: the same unlearned model."""
    request, original, data, kind = parameters["request"], parameters["original"], parameters["data"], parameters["kind"]
    inputs = [request.model_dump_json(), original.weights_sha256, *kind.cache_inputs(data)]
    return f"unlearn-{request.request_id}-{cache_digest(*inputs)}"


# Prefect persists the unlearn task's result (under PREFECT_HOME/storage, i.e. $ERASURE_HOME/prefect/storage)
# and a rerun with the same key reads it instead of unlearning again. The result holds the unlearned model
# and the run's step count, never forget data.
PERSISTED_UNLEARN = {"cache_key_fn": unlearn_cache_key, "persist_result": True}


def remember_candidate(name: str, alias: str, version: str) -> None:
    """Called by the register task: what the rollback hook needs to reject the candidate."""
    get_transaction().set("candidate", (name, alias, version))


def reject_candidate(transaction: Transaction) -> None:
    """Rollback hook of the register task: a failure before the alias moved tags the candidate `failed`.

    If the alias already points at it (the alias move went through, tagging after it failed), the
    promotion took effect; the request is recorded `failed` and a rerun finishes it.
    """
    name, alias, version = transaction.get("candidate")
    settings = load_settings()
    if registry.alias_version(settings, name, alias) != version:
        registry.tag_version(settings, name, version, {registry.TAG_STATUS: "failed"})
