"""The deletion-request flow: one Prefect task per stage, in the order a request travels.

load request -> pull model -> check thresholds -> pull data -> validate -> unlearn -> verify
  -> (passed) register candidate -> export ONNX + parity -> promote
  -> audit record, whatever happened.

The model's architecture says what it does (restoration or classification): that picks the
thresholds that apply, the forget set's schema, the unlearning task and the verification.
The candidate is registered and exported *before* the alias moves, so the served alias only ever
points at a version whose verification and ONNX parity both passed.
"""

from __future__ import annotations

import copy
import hashlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pipelines import datastore, registry, validation
from pipelines.audit import AuditRecord, local_record_path, now, read_record, write_record
from pipelines.audit.publish import publish_prefect_artifacts
from pipelines.datastore import DataRevisionError, FetchedFile
from pipelines.evaluation import Assessment, EvaluationSets, assess
from pipelines.export import export_and_check
from pipelines.request import DeletionRequest, RequestError, load_request, raw_request_id
from pipelines.settings import Settings, load_settings
from unlearning.data.pairs import CorruptDataError, PairSet, concat, decode_arrays, without
from unlearning.device import best_device
from unlearning.methods import UnlearningProblem, create_method
from unlearning.methods.base import DivergenceError, UnlearningError
from unlearning.tasks import Task, task_for

# Errors caused by what the request asked for or pointed at: the request is refused ("rejected").
# Anything else is the platform's fault ("failed").
INPUT_ERRORS = (
    RequestError,
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


@dataclass
class RequestData:
    forget: FetchedFile
    retain: list[FetchedFile]
    evaluation: dict[str, FetchedFile]  # by set name (file stem), forgotten and kept


def _set_name(path: str) -> str:
    return Path(path).stem


def _pairs(fetched: FetchedFile) -> PairSet:
    arrays, _ = decode_arrays(fetched.content, fetched.path)
    return PairSet.from_arrays(_set_name(fetched.path), arrays)


@task(name="load request", cache_policy=NO_CACHE)
def load_request_stage(request_file: str) -> DeletionRequest:
    return load_request(Path(request_file))


@task(name="pull model", cache_policy=NO_CACHE, **RETRY)
def pull_model_stage(settings: Settings, request: DeletionRequest) -> registry.RegisteredModel:
    return registry.load_by_alias(settings, request.model.name, request.model.alias)


@task(name="pull data", cache_policy=NO_CACHE)
def pull_data_stage(settings: Settings, request: DeletionRequest) -> RequestData:
    def read(path: str) -> FetchedFile:
        return datastore.fetch(settings.data_repo, path, request.forget.rev)

    evaluation_paths = [request.forget.evaluation, *request.retain.evaluation]
    return RequestData(
        forget=read(request.forget.path),
        retain=[read(path) for path in request.retain.paths],
        evaluation={_set_name(path): read(path) for path in evaluation_paths},
    )


@task(name="validate forget set", cache_policy=NO_CACHE)
def validate_stage(request: DeletionRequest, data: RequestData, model_task: Task) -> validation.ValidationSummary:
    forget_arrays, _ = decode_arrays(data.forget.content, data.forget.path)
    evaluation_arrays, _ = decode_arrays(data.evaluation[_set_name(request.forget.evaluation)].content, "evaluation")
    return validation.validate_forget_set(
        forget_arrays["inputs"],
        forget_arrays["targets"],
        validation.SetSchema.like(evaluation_arrays, model_task.kind, getattr(model_task, "classes", None)),
        evaluation_inputs=evaluation_arrays["inputs"],
    )


def _retain_set(data: RequestData, forget: PairSet) -> tuple[PairSet | None, int]:
    """The retain sets less any example the request deletes (a whole split may be named as retain data)."""
    if not data.retain:
        return None, 0
    return without(concat([_pairs(f) for f in data.retain], "retain"), forget)


@task(name="unlearn", cache_policy=NO_CACHE)
def unlearn_stage(request: DeletionRequest, original: registry.RegisteredModel, data: RequestData, device: torch.device,
                  model_task: Task):
    method = create_method(request.method.name, request.method.params, task_kind=model_task.kind)
    forget = _pairs(data.forget)
    retain, excluded = _retain_set(data, forget)
    model = copy.deepcopy(original.model)
    torch.manual_seed(method.params.seed)
    problem = UnlearningProblem(model=model, forget=forget, retain=retain, device=device, task=model_task)
    outcome = method.run(problem)
    retained = {"retain_examples": len(retain) if retain is not None else 0, "retain_examples_excluded_as_forget": excluded}
    return model.cpu().eval(), method, outcome, retained


def evaluation_sets(request: DeletionRequest, data: RequestData) -> EvaluationSets:
    """The request's held-out sets; the kept ones less the held-out examples of the forgotten data."""
    forgotten = _set_name(request.forget.evaluation)
    sets = {name: _pairs(fetched) for name, fetched in data.evaluation.items()}
    sets = {name: pairs if name == forgotten else without(pairs, sets[forgotten])[0] for name, pairs in sets.items()}
    return EvaluationSets(forget=_pairs(data.forget), forgotten=forgotten, sets=sets)


@task(name="verify", cache_policy=NO_CACHE)
def verify_stage(request, model_task: Task, original, unlearned, data: RequestData, device, seeds: dict[str, int]) -> Assessment:
    thresholds = request.thresholds.for_task(model_task.kind, request.model)
    return assess(model_task, thresholds, original.model, unlearned, evaluation_sets(request, data), device, seeds)


# Not retried: a retry after a half-finished registration could create a duplicate version.
@task(name="register candidate", cache_policy=NO_CACHE)
def register_stage(settings, request, original, unlearned, run_id) -> tuple[str, str]:
    return registry.log_and_register(
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
    )


@task(name="export onnx", cache_policy=NO_CACHE)
def export_stage(settings, request, unlearned, data: RequestData, version: str, run_id: str):
    inputs = _pairs(data.evaluation[_set_name(request.forget.evaluation)]).inputs
    with tempfile.TemporaryDirectory() as scratch:
        result = export_and_check(unlearned, inputs, Path(scratch) / "model.onnx")
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
    """Process one deletion request file; returns the outcome. Never raises for a refused request."""
    settings = load_settings()
    logger = get_run_logger()
    request_text = Path(request_file).read_bytes() if Path(request_file).exists() else b""
    fallback_id = raw_request_id(request_text.decode(errors="replace")) or f"unparsed-{hashlib.sha256(request_text).hexdigest()[:12]}"
    # At most once per request id: a decided request returns its recorded outcome; only a request
    # that failed for the platform's reasons is run again.
    previous = read_record(settings, fallback_id)
    if previous is not None and previous.status in ("passed", "rejected"):
        logger.info("request %s was already processed (%s): returning the recorded outcome", fallback_id, previous.status)
        return summarize(previous, local_record_path(settings, fallback_id), replayed=True)
    record = AuditRecord(request_id=fallback_id, request_sha256=hashlib.sha256(request_text).hexdigest())
    mlflow_client = registry.client(settings)
    run = mlflow_client.create_run(
        registry.ensure_experiment(settings, settings.audit_experiment), run_name=fallback_id
    )
    record.mlflow_run_id = run.info.run_id
    stage = "load request"
    try:
        request = load_request_stage(request_file)
        record.request_id, record.requested_by, record.reason = request.request_id, request.requested_by, request.reason
        record.model.name, record.model.alias = request.model.name, request.model.alias
        record.method = {"name": request.method.name, "params": request.method.params}
        record.privacy.file_names = "hashed" if request.privacy.hash_file_names else "plain"
        mlflow_client.log_param(run.info.run_id, "method", request.method.name)

        stage = "pull model"
        original = pull_model_stage(settings, request)
        record.model.version_before, record.model.weights_sha256_before = original.version, original.weights_sha256

        stage = "check thresholds"
        model_task = task_for(original.model)
        request.thresholds.for_task(model_task.kind, request.model)  # refuse misplaced thresholds before any work

        stage = "pull data"
        data = pull_data_stage(settings, request)
        record.forget_data = {**data.forget.provenance(), "examples": None}
        record.retain_data = [f.provenance() for f in data.retain]
        record.evaluation_data = [f.provenance() for f in data.evaluation.values()]

        stage = "validate"
        summary = validate_stage(request, data, model_task)
        record.validation = summary.as_record()
        record.forget_data["examples"] = len(decode_arrays(data.forget.content, data.forget.path)[0]["inputs"])

        stage = "unlearn"
        device = best_device()
        record.device = str(device)
        started = time.perf_counter()
        unlearned, method, outcome, retained = unlearn_stage(request, original, data, device, model_task)
        record.method = {"name": method.name, "params": method.params.model_dump()}
        record.unlearning = {"task": model_task.kind, "steps": outcome.steps, "seconds": round(outcome.seconds, 3),
                             "needs_retain": method.needs_retain, **retained}
        for key, value in method.params.model_dump().items():
            mlflow_client.log_param(run.info.run_id, f"method.{key}", value)

        stage = "verify"
        assessment = verify_stage(request, model_task, original, unlearned, data, device, {"method": method.params.seed})
        verdict = assessment.verdict
        record.verdict = {"passed": verdict.passed, "reasons": verdict.reasons}
        record.metrics, record.evidence = assessment.metrics, assessment.evidence
        for evidence in record.metrics:
            mlflow_client.log_metric(run.info.run_id, evidence.name, evidence.value)
        record.unlearning["seconds_total"] = round(time.perf_counter() - started, 3)
        if not verdict.passed:
            raise VerificationRejected("verify: thresholds not met: " + "; ".join(r for r in verdict.reasons if "fails" in r))

        stage = "register"
        version, digest = register_stage(settings, request, original, unlearned, run.info.run_id)
        record.model.version_after, record.model.weights_sha256_after = version, digest

        stage = "export"
        try:
            record.export = export_stage(settings, request, unlearned, data, version, run.info.run_id).as_record()
        except Exception:
            registry.tag_version(settings, request.model.name, version, {registry.TAG_STATUS: "failed"})
            raise

        stage = "promote"
        promote_stage(settings, request, version, original.version)
        record.model.promoted = True
        record.status = "passed"
    except (VerificationRejected, *INPUT_ERRORS) as error:
        record.status, record.failed_stage, record.error = "rejected", stage, str(error)
    except Exception as error:  # noqa: BLE001 - every failure must still leave an audit record
        record.status, record.failed_stage, record.error = "failed", stage, f"{type(error).__name__}: {error}"
    finally:
        record.finished_at = now()
        location = audit_stage(settings, record)
        publish_prefect_artifacts(settings, record)
    logger.info("request %s: %s (audit record %s)", record.request_id, record.status, location)
    return summarize(record, location)


def summarize(record: AuditRecord, location: Path, replayed: bool = False) -> dict:
    """The flow's result: what the CLI prints and what the inbox files next to the request."""
    return {
        "request_id": record.request_id,
        "status": record.status,
        "replayed": replayed,
        "stage": record.failed_stage,
        "error": record.error,
        "reasons": record.verdict.get("reasons", []),
        "model": record.model.name,
        "version_before": record.model.version_before,
        "version_after": record.model.version_after if record.model.promoted else None,
        "audit_record": str(location),
        "mlflow_run_id": record.mlflow_run_id,
    }
