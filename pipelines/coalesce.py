"""Coalescing: pending requests for the same model and method are unlearned together, in one run.

One unlearning run on the union of their forget sets (retain: the union of their retain sets, less every
forgotten example); then each request is verified against its own thresholds on its own evaluation sets.
If every one passes, one version is registered, exported and promoted, and each request gets its own audit
record, chained one after another, naming the group and the shared run (`coalesced`). The shared model is
logged in the first request's audit run.

A request that does not fit the group is processed alone, by the deletion flow, after the group:
- unreadable, already decided, or an id that appears twice: never grouped (refused or replayed alone);
- its model, data or forget set is refused: set aside, and refused alone with its own audit record; the
  rest of the group goes on;
- it fails its own checks on the shared model: nothing is promoted for the group, and every member is
  processed alone, so each gets its verdict on a model unlearned for it alone. This costs one group
  unlearning and never promotes a model that a member's checks rejected.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import torch
from prefect import flow, get_run_logger, task
from prefect.transactions import transaction

from pipelines import locks, recovery, registry
from pipelines.audit import AuditRecord, now, read_record
from pipelines.audit.publish import publish_prefect_artifacts
from pipelines.audit.record import Coalesced
from pipelines.flow import (
    INPUT_ERRORS,
    RequestData,
    _pairs,
    audit_stage,
    export_stage,
    promote_stage,
    pull_data_stage,
    pull_model_stage,
    register_stage,
    summarize,
    validate_stage,
    verify_stage,
)
from pipelines.request import DeletionRequest, RequestError, load_request
from pipelines.evaluation import Assessment
from pipelines.retain import retain_without_forget
from pipelines.settings import Settings, load_settings
from unlearning.data.pairs import PairSet, concat, decode_arrays, example_digests
from unlearning.device import best_device
from unlearning.methods import UnlearningProblem, create_method
from unlearning.tasks import Task, task_for

TAG_COALESCED = "erasure.coalesced_requests"


@dataclass
class Member:
    file: str
    request: DeletionRequest
    sha256: str
    data: RequestData | None = None
    validation: dict | None = None


def group_key(request: DeletionRequest) -> str:
    """Requests coalesce when they name the same model and alias and the same method with the same params."""
    return json.dumps([str(request.model), request.method.name, request.method.params], sort_keys=True, default=str)


def plan(paths: Iterable[Path]) -> list[list[Path]]:
    """Pending files in groups to run together, in arrival order of each group's first file. Unreadable
    files, decided requests and repeated ids come alone."""
    settings = load_settings()
    groups: dict[str, list[Path]] = {}
    seen: set[str] = set()
    for index, path in enumerate(paths):
        try:
            request = load_request(path)
        except RequestError:
            groups[f"alone-{index}"] = [path]
            continue
        previous = read_record(settings, request.request_id)
        if request.request_id in seen or (previous is not None and previous.status in ("passed", "rejected")):
            groups[f"alone-{index}"] = [path]
            continue
        seen.add(request.request_id)
        groups.setdefault(group_key(request), []).append(path)
    return list(groups.values())


def _unique(pairs: PairSet) -> PairSet:
    """`pairs` without repeated examples (two requests may forget the same example)."""
    first: dict[str, int] = {}
    for index, digest in enumerate(example_digests(pairs)):
        first.setdefault(digest, index)
    return pairs if len(first) == len(pairs) else pairs.subset(torch.tensor(sorted(first.values())))


def group_cache_key(context, parameters: dict) -> str:
    """Same requests, same base weights, same data bytes: the same shared model (see recovery.py)."""
    requests, original, datas = parameters["requests"], parameters["original"], parameters["datas"]
    inputs = [r.model_dump_json() for r in requests] + [original.weights_sha256]
    inputs += [f.sha256 for data in datas for f in (data.forget, *data.retain)]
    return f"unlearn-group-{requests[0].request_id}-{recovery.cache_digest(*inputs)}"


@task(name="unlearn (coalesced)", cache_key_fn=group_cache_key, persist_result=True)
def unlearn_group_stage(requests: list[DeletionRequest], original: registry.RegisteredModel, datas: list[RequestData], device,
                        model_task: Task):
    """One unlearning run on the union of the requests' forget sets; they share method and params."""
    lead = requests[0]
    method = create_method(lead.method.name, lead.method.params, task_kind=model_task.kind)
    forget = _unique(concat([_pairs(data.forget) for data in datas], "forget"))
    retain_files = {f.sha256: f for data in datas for f in data.retain}  # a set two requests keep is read once
    retain = concat([_pairs(f) for f in retain_files.values()], "retain") if retain_files else None
    retain, excluded = retain_without_forget(method, forget, retain)
    model = copy.deepcopy(original.model)
    torch.manual_seed(method.params.seed)
    outcome = method.run(UnlearningProblem(model=model, forget=forget, retain=retain, device=device, task=model_task))
    retained = {"retain_examples": len(retain) if retain is not None else 0, "retain_examples_excluded_as_forget": excluded}
    # A fresh instance: this result is persisted, and a run's state may hold forget-derived tensors.
    return model.cpu().eval(), type(method)(method.params), outcome, len(forget), retained


@dataclass
class SharedRun:
    """A group that unlearned together and passed every member's checks, ready to register and promote."""

    group: list[Member]
    original: registry.RegisteredModel
    unlearned: torch.nn.Module
    method: object
    outcome: object
    forget_examples: int
    retained: dict
    checks: list[Assessment]  # per member, in group order
    seconds: float
    device: torch.device
    model_task: Task


@flow(name="deletion-coalesced", log_prints=True)
def coalesced_flow(request_files: list[str]) -> tuple[list[tuple[str, dict]], list[str]]:
    """Run `request_files` (one model, one method) as one unlearning run. Returns (file, outcome) for the
    requests it decided, and the files it left to be processed alone (see the module docstring)."""
    settings = load_settings()
    logger = get_run_logger()
    members = []
    for file in request_files:
        text = Path(file).read_bytes()
        members.append(Member(file, load_request(Path(file)), hashlib.sha256(text).hexdigest()))
    with ExitStack() as held:
        # Request locks in id order, then the model's: the deletion flow's order, so the two never deadlock.
        for member in sorted(members, key=lambda m: m.request.request_id):
            held.enter_context(locks.request_lock(settings, member.request.request_id))
        held.enter_context(locks.model_lock(settings, members[0].request.model.name))
        try:
            shared = _unlearn_and_verify(settings, members)
        except Exception:  # noqa: BLE001 - the platform broke before anything was registered: try each alone
            logger.exception("coalesced group failed before registration; its requests will be processed alone")
            shared = None
        if shared is None:
            return [], request_files
        outcomes = _promote_and_record(settings, shared)
    decided = {m.file for m in shared.group}
    return outcomes, [file for file in request_files if file not in decided]


def _unlearn_and_verify(settings: Settings, members: list[Member]) -> SharedRun | None:
    """The shared run, or None when there is nothing to share (fewer than two members fit, or one failed)."""
    logger = get_run_logger()
    undecided = [m for m in members if not _decided(settings, m)]  # decided since planning: replayed alone
    if len(undecided) < 2:
        return None
    try:
        original = pull_model_stage(settings, undecided[0].request)
    except INPUT_ERRORS:
        return None  # the model is refused for all of them: each is refused alone
    model_task = task_for(original.model)
    group = []
    for member in undecided:
        try:
            member.request.thresholds.for_task(model_task.kind, member.request.model)
            member.data = pull_data_stage(settings, member.request)
            member.validation = validate_stage(member.request, member.data, model_task).as_record()
            group.append(member)
        except INPUT_ERRORS as error:
            logger.info("request %s set aside, to be refused alone: %s", member.request.request_id, error)
    if len(group) < 2:
        return None
    device = best_device()
    started = time.perf_counter()
    try:
        unlearned, method, outcome, forget_examples, retained = unlearn_group_stage(
            [m.request for m in group], original, [m.data for m in group], device, model_task
        )
    except INPUT_ERRORS:
        return None  # e.g. the union leaves nothing to retain: each request is judged alone
    seeds = {"method": method.params.seed}
    checks = [verify_stage(m.request, model_task, original, unlearned, m.data, device, seeds) for m in group]
    failing = [m.request.request_id for m, assessment in zip(group, checks) if not assessment.verdict.passed]
    if failing:
        logger.info("coalesced group dissolved: %s failed their checks on the shared model", failing)
        return None
    return SharedRun(group, original, unlearned, method, outcome, forget_examples, retained, checks,
                     time.perf_counter() - started, device, model_task)


def _decided(settings: Settings, member: Member) -> bool:
    previous = read_record(settings, member.request.request_id)
    return previous is not None and previous.status in ("passed", "rejected")


def _promote_and_record(settings: Settings, shared: SharedRun) -> list[tuple[str, dict]]:
    """Register, export and promote the shared model once; one audit record per member, in group order."""
    lead, model_name = shared.group[0], shared.group[0].request.model.name
    lead_run = recovery.audit_run(settings, lead.request.request_id, lead.sha256)
    coalesced = Coalesced(
        requests=[m.request.request_id for m in shared.group], shared_run_id=lead_run.info.run_id,
        forget_examples=shared.forget_examples,
    )
    records = [_record(member, shared, checks, coalesced) for member, checks in zip(shared.group, shared.checks)]
    stage = "register"
    try:
        with transaction():  # as in the deletion flow: a failure before the alias moved rejects the candidate
            version, digest = register_stage(settings, lead.request, shared.original, shared.unlearned, lead_run.info.run_id)
            registry.tag_version(settings, model_name, version, {TAG_COALESCED: ",".join(coalesced.requests)})
            stage = "export"
            export_run_id = registry.version_run_id(settings, model_name, version)
            export = export_stage(settings, lead.request, shared.unlearned, lead.data, version, export_run_id).as_record()
            stage = "promote"
            promote_stage(settings, lead.request, version, shared.original.version)
        for record in records:
            record.model.version_after, record.model.weights_sha256_after, record.export = version, digest, export
            record.model.promoted, record.status = True, "passed"
    except Exception as error:  # noqa: BLE001 - the platform broke: each request is recorded failed, retried later
        for record in records:
            record.status, record.failed_stage, record.error = "failed", stage, f"{type(error).__name__}: {error}"

    outcomes = []
    for member, record in zip(shared.group, records):
        run = lead_run if member is lead else recovery.audit_run(settings, member.request.request_id, member.sha256)
        record.mlflow_run_id, record.attempt = run.info.run_id, recovery.attempt(run)
        _log_run(settings, run.info.run_id, shared.method, record)
        record.finished_at = now()
        location = audit_stage(settings, record)
        publish_prefect_artifacts(settings, record)
        others = [r for r in coalesced.requests if r != record.request_id]
        outcomes.append((member.file, {**summarize(record, location), "coalesced_with": others}))
    return outcomes


def _record(member: Member, shared: SharedRun, assessment: Assessment, coalesced: Coalesced) -> AuditRecord:
    """The member's audit record: the deletion flow's fields, its checks on its own evaluation sets."""
    request, data, method = member.request, member.data, shared.method
    record = AuditRecord(
        request_id=request.request_id, request_sha256=member.sha256, requested_by=request.requested_by, reason=request.reason
    )
    record.model.name, record.model.alias = request.model.name, request.model.alias
    record.model.version_before, record.model.weights_sha256_before = shared.original.version, shared.original.weights_sha256
    record.privacy.file_names = "hashed" if request.privacy.hash_file_names else "plain"
    examples = len(decode_arrays(data.forget.content, data.forget.path)[0]["inputs"])
    record.forget_data = {**data.forget.provenance(), "examples": examples}
    record.retain_data = [f.provenance() for f in data.retain]
    record.evaluation_data = [f.provenance() for f in data.evaluation.values()]
    record.validation = member.validation
    record.device = str(shared.device)
    record.method = {"name": method.name, "params": method.params.model_dump()}
    record.unlearning = {
        "task": shared.model_task.kind, "steps": shared.outcome.steps, "seconds": round(shared.outcome.seconds, 3),
        "needs_retain": method.needs_retain, "seconds_total": round(shared.seconds, 3), **shared.retained,
    }
    record.verdict = {"passed": assessment.verdict.passed, "reasons": assessment.verdict.reasons}
    record.metrics, record.evidence = assessment.metrics, assessment.evidence
    record.coalesced = coalesced
    return record


def _log_run(settings: Settings, run_id: str, method, record: AuditRecord) -> None:
    mlflow_client = registry.client(settings)
    mlflow_client.log_param(run_id, "method", method.name)
    for key, value in method.params.model_dump().items():
        mlflow_client.log_param(run_id, f"method.{key}", value)
    for evidence in record.metrics:
        mlflow_client.log_metric(run_id, evidence.name, evidence.value)
