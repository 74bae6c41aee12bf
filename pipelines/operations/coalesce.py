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

import hashlib
import json
import time
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.transactions import transaction

from pipelines import kinds
from pipelines.adapters import datastore, registry, validation
from pipelines.adapters.settings import Settings, load_settings
from pipelines.audit import AuditRecord, now, read_record
from pipelines.audit.publish import publish_prefect_artifacts
from pipelines.audit.record import Coalesced
from pipelines.flow.deletion import (
    INPUT_ERRORS,
    audit_stage,
    erase_training_data,
    export_stage,
    method_params,
    promote_stage,
    pull_data_stage,
    pull_model_stage,
    record_assessment,
    record_data,
    record_metrics,
    record_request,
    record_unlearning,
    register_stage,
    summarize,
    unlearn,
    verify_stage,
)
from pipelines.flow.request import DeletionRequest, RequestError, load_request
from pipelines.kinds import Assessment, ModelKind
from pipelines.kinds.base import shared_evaluation
from pipelines.operations import locks, recovery
from unlearning.device import best_device

TAG_COALESCED = "erasure.coalesced_requests"


@dataclass
class Member:
    file: str
    request: DeletionRequest
    sha256: str
    data: Any = None  # the kind's decoded data for this request
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


def group_cache_key(context, parameters: dict) -> str:
    """Same requests, same base weights, same data bytes: the same shared model (see recovery.py)."""
    requests, original, datas, kind = parameters["requests"], parameters["original"], parameters["datas"], parameters["kind"]
    inputs = [r.model_dump_json() for r in requests] + [original.weights_sha256]
    inputs += [digest for data in datas for digest in kind.cache_inputs(data)]
    return f"unlearn-group-{requests[0].request_id}-{recovery.cache_digest(*inputs)}"


@task(name="unlearn (coalesced)", cache_key_fn=group_cache_key, persist_result=True)
def unlearn_group_stage(requests: list[DeletionRequest], original: registry.RegisteredModel, datas: list, device,
                        kind: ModelKind):
    """One unlearning run on the union of the requests' forget data; they share method and params."""
    return unlearn(requests[0], original, datas, device, kind)


@task(name="validate forget sets (coalesced)", cache_policy=NO_CACHE)
def validate_group_stage(members: list[Member], original: registry.RegisteredModel, kind: ModelKind) -> list:
    """Each member's validation summary, or the error that refuses it, from one GX run on their union when
    it passes (pipelines/adapters/validation.py: validate_forget_sets)."""
    forget_sets = [kind.forget_set(m.request, m.data, original.model) for m in members]
    return validation.validate_forget_sets(forget_sets)


@dataclass
class SharedRun:
    """A group that unlearned together and passed every member's checks, ready to register and promote."""

    group: list[Member]
    original: registry.RegisteredModel
    unlearned: torch.nn.Module
    method: object
    outcome: object
    retained: dict
    checks: list[Assessment]  # per member, in group order
    seconds: float
    device: torch.device
    kind: ModelKind


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
    kind = kinds.kind_of(original.model, undecided[0].request.forget)
    if not kind.coalesces:
        return None  # e.g. generators: each request generates its own data; processed alone
    pulled = []
    with datastore.shared_reads():  # the members' shared files (retain, evaluation sets) are read once
        for member in undecided:
            try:
                kind.check_request(member.request)
                member.data = pull_data_stage(settings, member.request, original, kind)
                pulled.append(member)
            except INPUT_ERRORS as error:
                logger.info("request %s set aside, to be refused alone: %s", member.request.request_id, error)
    group = []
    for member, summary in zip(pulled, validate_group_stage(pulled, original, kind)):
        if isinstance(summary, Exception):
            logger.info("request %s set aside, to be refused alone: %s", member.request.request_id, summary)
            continue
        member.validation = summary.as_record()
        group.append(member)
    if len(group) < 2:
        return None
    device = best_device()
    started = time.perf_counter()
    try:
        unlearned, method, outcome, retained = unlearn_group_stage(
            [m.request for m in group], original, [m.data for m in group], device, kind
        )
    except INPUT_ERRORS:
        return None  # e.g. the union leaves nothing to retain: each request is judged alone
    seeds = {"method": method.params.seed}
    with shared_evaluation():  # one shared model, mostly the same held-out sets: each evaluated once
        checks = [verify_stage(m.request, kind, original, unlearned, m.data, device, seeds) for m in group]
    failing = [m.request.request_id for m, assessment in zip(group, checks) if not assessment.verdict.passed]
    if failing:
        logger.info("coalesced group dissolved: %s failed their checks on the shared model", failing)
        return None
    return SharedRun(group, original, unlearned, method, outcome, retained, checks,
                     time.perf_counter() - started, device, kind)


def _decided(settings: Settings, member: Member) -> bool:
    previous = read_record(settings, member.request.request_id)
    return previous is not None and previous.status in ("passed", "rejected")


def _promote_and_record(settings: Settings, shared: SharedRun) -> list[tuple[str, dict]]:
    """Register, export and promote the shared model once; one audit record per member, in group order."""
    lead, model_name = shared.group[0], shared.group[0].request.model.name
    lead_run = recovery.audit_run(settings, lead.request.request_id, lead.sha256)
    coalesced = Coalesced(
        requests=[m.request.request_id for m in shared.group], shared_run_id=lead_run.info.run_id,
        forget_examples=shared.retained.get("forget_examples", 0),
    )
    records = [_record(member, shared, checks, coalesced) for member, checks in zip(shared.group, shared.checks)]
    stage = "register"
    try:
        with transaction():  # as in the deletion flow: a failure before the alias moved rejects the candidate
            version, digest = register_stage(settings, lead.request, shared.original, shared.unlearned, lead_run.info.run_id)
            registry.tag_version(settings, model_name, version, {TAG_COALESCED: ",".join(coalesced.requests)})
            stage = "export"
            export_run_id = registry.version_run_id(settings, model_name, version)
            export_inputs = shared.kind.export_inputs(lead.data)
            export = export_stage(settings, lead.request, shared.unlearned, export_inputs, version, export_run_id).as_record()
            stage = "promote"
            promote_stage(settings, lead.request, version, shared.original.version)
        for record in records:
            record.model.version_after, record.model.weights_sha256_after, record.export = version, digest, export
            record.model.promoted, record.status = True, "passed"
        stage = "erase data"  # one data revision removes the union of the members' examples
        erase_training_data(settings, records, [m.data for m in shared.group], shared.kind, shared.original, version)
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
    record = AuditRecord(request_id=member.request.request_id, request_sha256=member.sha256)
    record_request(record, member.request)
    record.model.version_before, record.model.weights_sha256_before = shared.original.version, shared.original.weights_sha256
    record.training_data = shared.original.lineage.as_record() if shared.original.lineage else None
    record_data(record, shared.kind, member.data)
    record.validation = member.validation
    record_unlearning(record, shared.kind, shared.method, shared.outcome, shared.retained, shared.device)
    record.unlearning["seconds_total"] = round(shared.seconds, 3)
    record_assessment(record, assessment)
    record.coalesced = coalesced
    return record


def _log_run(settings: Settings, run_id: str, method, record: AuditRecord) -> None:
    """The deletion flow's params and metrics for this member's audit run, in one MLflow call."""
    from mlflow.entities import Param

    params = [Param("method", method.name), *method_params(method)]
    registry.client(settings).log_batch(run_id, params=params, metrics=record_metrics(record))
