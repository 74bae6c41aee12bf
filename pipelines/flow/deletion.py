"""The deletion-request flow: one Prefect task per stage, in the order a request travels.

load request -> pull model -> check thresholds -> pull data -> validate -> unlearn -> verify
  -> (passed) register candidate -> export ONNX + parity -> promote -> erase the examples from the training data
  -> audit record, whatever happened.

The model's architecture declares its kind (restoration, classification, generation); that kind's
plug-in (pipelines/kinds/) supplies everything that differs between kinds: the forget target's form,
the thresholds, the data and its validation, the unlearning problem, the verification and the export
example. The flow itself never branches on the kind.
The candidate is registered and exported *before* the alias moves, so the served alias only ever
points at a version whose verification and ONNX parity both passed. The training data loses the forgotten
examples only after the alias moved (pipelines/erasure/training_data.py); a failed data commit is recorded as such and
retried with `erasure data erase REQUEST_ID`, never undoing the promotion. Requests for one model run one at a
time (pipelines/operations/locks.py); a request killed at any stage is finished by running it again
(pipelines/operations/recovery.py).

One file (~430 lines) on purpose: the flow reads as one story, stage after stage; what varies lives in the kinds.
"""

from __future__ import annotations

import copy
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import torch
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.transactions import transaction

from pipelines import kinds
from pipelines.adapters import registry, validation
from pipelines.adapters.datastore import DataRevisionError
from pipelines.adapters.export import export_and_check
from pipelines.adapters.settings import PROJECT_ROOT, Settings, load_settings
from pipelines.audit import AuditRecord, local_record_path, now, read_record, write_record
from pipelines.audit.model_signature import sign_version
from pipelines.audit.publish import publish_prefect_artifacts
from pipelines.erasure import lineage
from pipelines.erasure import training_data as erasure
from pipelines.flow.request import DeletionRequest, RequestError, load_request, raw_request_id
from pipelines.flow.request_file import request_file_digest
from pipelines.kinds import Assessment, ModelKind
from pipelines.operations import locks, recovery
from pipelines.operations.faults import enter_stage
from pipelines.operations.replay import summarize
from unlearning import numerics
from unlearning.data.pairs import CorruptDataError
from unlearning.device import best_device
from unlearning.methods import create_method
from unlearning.methods.base import UnlearningError

# Errors caused by what the request asked for or pointed at: the request is refused ("rejected").
# Anything else is the platform's fault ("failed").
INPUT_ERRORS = (
    RequestError,
    kinds.KindError,
    kinds.UnknownKindError,
    registry.ModelNotFoundError,
    registry.ModelIntegrityError,
    DataRevisionError,
    CorruptDataError,
    validation.ForgetSetValidationError,
    UnlearningError,
)


def retry_if_transient(task, task_run, state) -> bool:
    """Prefect retry condition: retry infrastructure hiccups, never a refusal of the request itself."""
    try:
        state.result()
    except INPUT_ERRORS:
        return False
    except Exception:  # noqa: BLE001 - anything else may be transient (registry or store unavailable)
        return True
    return False


RETRY = {"retries": 2, "retry_delay_seconds": [1, 4], "retry_condition_fn": retry_if_transient}


class VerificationRejected(Exception):
    """Unlearning ran, but forgetting or retention missed the request's thresholds."""


@task(name="load request", cache_policy=NO_CACHE)
def load_request_stage(request_file: str) -> DeletionRequest:
    return load_request(Path(request_file))


@task(name="pull model", cache_policy=NO_CACHE, **RETRY)
def pull_model_stage(settings: Settings, request: DeletionRequest) -> registry.RegisteredModel:
    return registry.load_request_base(settings, request.model.name, request.model.alias, request.request_id)


@task(name="pull data", cache_policy=NO_CACHE)
def pull_data_stage(settings: Settings, request: DeletionRequest, original: registry.RegisteredModel, kind: ModelKind):
    """The request's data, decoded once: every later stage reads this, never the files again."""
    return kind.pull_data(settings, request, original)


@task(name="validate forget set", cache_policy=NO_CACHE)
def validate_stage(request: DeletionRequest, data, original: registry.RegisteredModel, kind: ModelKind) -> validation.ValidationSummary:
    return kind.validate(request, data, original.model)


@task(name="unlearn", **recovery.PERSISTED_UNLEARN)
def unlearn_stage(request: DeletionRequest, original: registry.RegisteredModel, data, device: torch.device, kind: ModelKind):
    return unlearn(request, original, [data], device, kind)


def unlearn(request: DeletionRequest, original: registry.RegisteredModel, datas: list, device: torch.device, kind: ModelKind):
    """Run the request's method on a copy of the original; `datas` are one request's data or a coalesced group's."""
    method = create_method(request.method.name, request.method.params, task_kind=kind.name)
    model = copy.deepcopy(original.model)
    torch.manual_seed(method.params.seed)
    problem, retained = kind.problem(method, original, datas, device, model)
    outcome = method.run(problem)
    # A fresh instance: this result is persisted, and a run's state may hold forget-derived tensors.
    return model.cpu().eval(), type(method)(method.params), outcome, retained


@task(name="verify", cache_policy=NO_CACHE)
def verify_stage(request, kind: ModelKind, original, unlearned, data, device, seeds: dict[str, int]) -> Assessment:
    return kind.assess(request, original.model, unlearned, data, device, seeds)


# Retried: registration is idempotent per request and weights, so a retry never duplicates a version.
@task(name="register candidate", cache_policy=NO_CACHE, **RETRY)
def register_stage(settings, request, original, unlearned, run_id) -> tuple[str, str]:
    version, digest = registry.log_and_register(
        settings,
        run_id,
        request.model.name,
        unlearned,
        original.architecture["architecture"],
        tags={
            registry.TAG_STATUS: "candidate",
            registry.TAG_PARENT: original.version,
            registry.TAG_REQUEST: request.request_id,
        },
        parent=original,
    )
    # Signed before anything can promote it: an OpenSSF signature (model.sig) inside the version's model directory.
    sign_version(settings, request.model.name, version)
    recovery.remember_candidate(request.model.name, request.model.alias, version)
    return version, digest


# The register task's rollback hook: runs when a stage after it, inside the flow's transaction, fails.
register_stage.on_rollback(recovery.reject_candidate)


@task(name="export onnx", cache_policy=NO_CACHE)
def export_stage(settings, request, unlearned, inputs: torch.Tensor, version: str, run_id: str):
    with tempfile.TemporaryDirectory() as scratch:
        result = export_and_check(unlearned, inputs, Path(scratch) / "model.onnx", graphs=settings.onnx_graphs)
        registry.client(settings).log_artifact(run_id, str(result.path), "onnx")
    registry.tag_version(
        settings,
        request.model.name,
        version,
        {"erasure.onnx_sha256": result.sha256, "erasure.onnx_max_abs_diff": f"{result.max_abs_diff:.3e}"},
    )
    return result


@task(name="promote", cache_policy=NO_CACHE, **RETRY)
def promote_stage(settings, request, version: str, previous: str) -> None:
    registry.promote(settings, request.model.name, request.model.alias, version, previous)


@task(name="audit", cache_policy=NO_CACHE, **RETRY)
def audit_stage(settings, record: AuditRecord) -> Path:
    return write_record(settings, record)


@flow(name="deletion-request", log_prints=True)
def deletion_flow(request_file: str) -> dict:
    """Process one deletion request file; returns the outcome. Never raises for a refused request.

    Safe to run again after a crash at any stage: it resumes (pipelines/operations/recovery.py).
    """
    settings = load_settings()
    request_head, request_sha256 = request_file_digest(Path(request_file))
    fallback_id = raw_request_id(request_head.decode(errors="replace")) or f"unparsed-{request_sha256[:12]}"
    with locks.request_lock(settings, fallback_id):
        return _process_request(settings, request_file, request_sha256, fallback_id)


def _process_request(settings: Settings, request_file: str, request_sha256: str, fallback_id: str) -> dict:
    logger = get_run_logger()
    # At most once per request id: a decided request returns its recorded outcome; only a request
    # that failed for the platform's reasons is run again.
    previous = read_record(settings, fallback_id)
    if previous is not None and previous.status in ("passed", "rejected"):
        logger.info("request %s was already processed (%s): returning the recorded outcome", fallback_id, previous.status)
        replayed = summarize(previous, local_record_path(settings, fallback_id), replayed=True)
        return replayed if previous.request_sha256 == request_sha256 else reused_id(replayed, previous, request_sha256)
    record = AuditRecord(request_id=fallback_id, request_sha256=request_sha256)
    mlflow_client = registry.client(settings)
    run = recovery.audit_run(settings, fallback_id, request_sha256)
    record.mlflow_run_id, record.attempt = run.info.run_id, recovery.attempt(run)
    model_lock = ExitStack()  # the model's lock, from "pull model" until the audit record is chained
    stage = enter_stage("load request")
    try:
        request = load_request_stage(request_file)
        record_request(record, request)
        mlflow_client.log_param(run.info.run_id, "method", request.method.name)

        stage = enter_stage("pull model")
        model_lock.enter_context(locks.model_lock(settings, request.model.name))
        helpers = model_lock.enter_context(registry.recording_alias_loads())
        original = pull_model_stage(settings, request)
        record.model.version_before, record.model.weights_sha256_before = original.version, original.weights_sha256
        record.training_data = original.lineage.as_record() if original.lineage else None

        stage = enter_stage("check thresholds")
        kind = kinds.kind_of(original.model, request.forget)
        kind.check_request(request)  # refuse a forget form or thresholds meant for another kind, before any work

        stage = enter_stage("pull data")
        data = pull_data_stage(settings, request, original, kind)
        record_data(record, kind, data)

        stage = enter_stage("validate")
        record.validation = validate_stage(request, data, original, kind).as_record()

        stage = enter_stage("unlearn")
        device = best_device()
        started = time.perf_counter()
        unlearned, method, outcome, retained = unlearn_stage(request, original, data, device, kind)
        record_unlearning(record, kind, method, outcome, retained, device)
        record.reproduction = reproduction_record(request, unlearned, device, helpers)
        log_method(mlflow_client, run.info.run_id, method)

        stage = enter_stage("verify")
        assessment = verify_stage(request, kind, original, unlearned, data, device, {"method": method.params.seed})
        record_assessment(record, assessment)
        log_metrics(mlflow_client, run.info.run_id, record)
        record.unlearning["seconds_total"] = round(time.perf_counter() - started, 3)
        if not assessment.verdict.passed:
            reasons = "; ".join(r for r in assessment.verdict.reasons if "fails" in r)
            raise VerificationRejected("verify: thresholds not met: " + reasons)

        stage = enter_stage("register")
        # A failure from here until the alias has moved rolls back: the candidate is tagged failed.
        with transaction():
            version, digest = register_stage(settings, request, original, unlearned, run.info.run_id)
            record.model.version_after, record.model.weights_sha256_after = version, digest

            stage = enter_stage("export")
            # The version's own run: an earlier attempt's when that attempt registered the same weights.
            export_run_id = registry.version_run_id(settings, request.model.name, version)
            record.export = export_stage(settings, request, unlearned, kind.export_inputs(data), version, export_run_id).as_record()

            stage = enter_stage("promote")
            promote_stage(settings, request, version, original.version)
        record.model.promoted = True
        record.status = "passed"

        stage = enter_stage("erase data")
        erase_training_data(settings, [record], [data], kind, original, version)
    except (VerificationRejected, *INPUT_ERRORS) as error:
        record.status, record.failed_stage, record.error = "rejected", stage, str(error)
    except Exception as error:  # noqa: BLE001 - every failure must still leave an audit record
        record.status, record.failed_stage, record.error = "failed", stage, f"{type(error).__name__}: {error}"
    finally:
        record.finished_at = now()
        enter_stage("audit")
        with model_lock:
            location = audit_stage(settings, record)
        publish_prefect_artifacts(settings, record)
    logger.info("request %s: %s (audit record %s)", record.request_id, record.status, location)
    return summarize(record, location)


@task(name="erase data", cache_policy=NO_CACHE)
def erase_data_stage(settings: Settings, request_ids: list[str], keys: list[str], trained_on: lineage.Lineage):
    return erasure.erase(settings, request_ids, keys, trained_on)


def erasure_skip_reason(settings: Settings, original: registry.RegisteredModel, examples: list) -> str | None:
    """Why a promoted request leaves the training data as it is, or None when it is erased."""
    if not settings.erase_data:
        return "data erasure is off (ERASURE_ERASE_DATA=false)"
    if original.lineage is None:
        return f"version {original.version} has no recorded training data (lineage)"
    if any(pairs is None for pairs in examples):
        return "the request names no training examples"
    # The embedded default's data repository is Erasure's own checkout: committing there (and switching its
    # branch) would rewrite the developer's data.dvc under them, so it takes an explicit branch.
    if settings.data_branch is None and settings.data_repo.resolve() == PROJECT_ROOT:
        return ("the data repository is Erasure's own checkout; set ERASURE_DATA_BRANCH to commit erasures "
                "there, or ERASURE_DATA_REPO to a data repository of its own")
    return None


def erase_training_data(settings: Settings, records: list[AuditRecord], datas: list, kind: ModelKind,
                        original: registry.RegisteredModel, version: str) -> None:
    """After promotion: commit the training data without the examples the records' requests forgot (their
    union, once), tag the new version with the new revision as its lineage, and say what happened in each
    record. Never raises: the promotion stands, and a failed commit is recorded to be retried."""
    trained_on = original.lineage
    examples = [kind.erasable_examples(data) for data in datas]
    reason = erasure_skip_reason(settings, original, examples)
    if reason:
        outcome = {"status": "skipped", "reason": reason}
        if trained_on is not None:
            # Nothing removed from the data: the new version was trained on its parent's training data.
            _tag_lineage(settings, records[0].model.name, version,
                         {**trained_on.tags(), lineage.TAG_DATA_ERASURE: "skipped"}, outcome)
        for record in records:
            record.data_erasure = dict(outcome)
        return
    own_keys = [erasure.example_keys(settings, pairs) for pairs in examples]
    union = sorted({key for keys in own_keys for key in keys})
    request_ids = [record.request_id for record in records]
    try:
        result, new_lineage = erase_data_stage(settings, request_ids, union, trained_on)
        outcome, tags = result.as_record(), {**new_lineage.tags(), lineage.TAG_DATA_ERASURE: result.status}
    except Exception as error:  # noqa: BLE001 - the model is promoted; the data commit is retried on its own
        outcome = {"status": "failed", "error": f"{type(error).__name__}: {error}", "request_ids": request_ids,
                   "base_commit": trained_on.commit, "examples": len(union), "example_keys": union,
                   "retry": f"erasure data erase {request_ids[0]}"}
        tags = {**trained_on.tags(), lineage.TAG_DATA_ERASURE: "failed"}
    _tag_lineage(settings, records[0].model.name, version, tags, outcome)
    for record, keys in zip(records, own_keys):
        # Each record keeps its own examples' keys; the commit is the one that removed the union.
        record.data_erasure = {**outcome, "examples": len(set(keys)), "example_keys": sorted(set(keys)),
                               "union_examples": len(union)}


def _tag_lineage(settings: Settings, name: str, version: str, tags: dict[str, str], outcome: dict) -> None:
    """Tag the new version's lineage; a failure is said in `outcome`, never raised (the promotion stands, and
    a missing tag must not hide what the data commit did)."""
    try:
        registry.tag_version(settings, name, version, tags)
    except Exception as error:  # noqa: BLE001
        outcome["lineage_tag_error"] = f"{type(error).__name__}: {error}"


def record_request(record: AuditRecord, request: DeletionRequest) -> None:
    """The record's fields that come from the request itself (shared with the coalesced flow)."""
    record.request_id, record.requested_by, record.reason = request.request_id, request.requested_by, request.reason
    record.model.name, record.model.alias = request.model.name, request.model.alias
    record.method = {"name": request.method.name, "params": request.method.params}
    record.privacy.file_names = "hashed" if request.privacy.hash_file_names else "plain"


def record_data(record: AuditRecord, kind: ModelKind, data) -> None:
    """Where the request's data came from: hashes and counts, never content."""
    provenance = kind.provenance(data)
    record.forget_data, record.retain_data, record.evaluation_data = (
        provenance["forget_data"], provenance["retain_data"], provenance["evaluation_data"]
    )


def record_unlearning(record: AuditRecord, kind: ModelKind, method, outcome, retained: dict, device) -> None:
    record.device = str(device)
    record.method = {"name": method.name, "params": method.params.model_dump()}
    record.unlearning = {"task": kind.name, "steps": outcome.steps, "seconds": round(outcome.seconds, 3),
                         "needs_retain": method.needs_retain, **retained,
                         # what a reviewer asks first of a no-retain method: was other data read at all?
                         "retain_data_used": bool(retained.get("retain_examples"))}


def reproduction_record(request: DeletionRequest, unlearned, device, helpers: list[dict]) -> dict:
    """What `erasure audit reproduce` needs beyond the rest of the record to run the unlearning again: the
    numerics it ran in, the unlearned weights' sha256, the helper versions the request's aliases named, and
    the request itself unless it holds what the record must not (inline record ids, file names to hash)."""
    withheld = None
    if request.privacy.hash_file_names:
        withheld = "the request asks for its file names to be hashed"
    elif getattr(request.forget, "records", None) is not None:
        withheld = "the request lists record ids, which the record keeps only as keyed commitments"
    return {
        "numerics": {**numerics.current().as_record(), "device": str(device)},
        "weights_sha256": registry.weights_sha256(unlearned),
        "helpers": list(helpers),
        "request": None if withheld else request.model_dump(mode="json"),
        "request_withheld": withheld,
    }


def record_assessment(record: AuditRecord, assessment: Assessment) -> None:
    record.verdict = {"passed": assessment.verdict.passed, "reasons": assessment.verdict.reasons}
    record.metrics, record.evidence = assessment.metrics, assessment.evidence


# One MLflow call each, not one per value (each is a registry round trip / sqlite transaction).
def log_method(mlflow_client, run_id: str, method) -> None:
    params = method_params(method)
    if params:
        mlflow_client.log_batch(run_id, params=params)


def log_metrics(mlflow_client, run_id: str, record: AuditRecord) -> None:
    metrics = record_metrics(record)
    if metrics:
        mlflow_client.log_batch(run_id, metrics=metrics)


def method_params(method) -> list:
    """The method's params as MLflow `Param`s (`method.<name>`)."""
    from mlflow.entities import Param

    return [Param(f"method.{key}", str(value)) for key, value in method.params.model_dump().items()]


def record_metrics(record: AuditRecord) -> list:
    """The record's evidence values as MLflow `Metric`s, one timestamp for all."""
    from mlflow.entities import Metric

    timestamp = int(time.time() * 1000)
    return [Metric(evidence.name, evidence.value, timestamp, 0) for evidence in record.metrics]


def reused_id(replayed: dict, previous: AuditRecord, request_sha256: str) -> dict:
    """A different request under an id already decided: refused; the id's record stays the original's."""
    error = (
        f"request_id {previous.request_id!r} was already used by a different request "
        f"(recorded sha256 {str(previous.request_sha256)[:16]}..., this file {request_sha256[:16]}...): "
        "give the new request its own request_id"
    )
    return {**replayed, "status": "rejected", "stage": "load request", "error": error, "reasons": [], "version_after": None}

