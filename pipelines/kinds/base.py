"""What a kind of model is to the deletion flow: one plug-in per kind, selected by the model itself.

A registered model's architecture declares the kind it is (`task_kind`: restoration, classification,
generation). The flow asks that kind's plug-in for everything that differs between kinds, and never
branches on the name:

    forget_form    the shape of the request's `forget:` section (data files, a generator's feature, ...)
    Thresholds     the request's pass criteria for this kind (pydantic, unknown names refused)
    pull_data      what the request's data is, read from DVC (or generated), decoded once
    forget_set     the forget data and the schema it must meet (validated by Great Expectations)
    problem        the unlearning problem handed to the method (unlearning/)
    assess         scores before/after, the verdict and its evidence
    export_inputs  example inputs for the ONNX export and its parity check
    figures        the report's charts for a record of this kind

Adding a kind is one module (here or in a package of your own) with a `ModelKind` subclass, listed under the
entry point group `erasure.kinds` (docs/plugins.md).
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from pipelines.audit.record import Evidence, MetricEvidence
from pipelines.flow.request import (  # noqa: F401 - re-exported: the request's parts a kind declares
    DeletionRequest,
    ForgetTarget,
    KindThresholds,
    RetainFiles,
    Strict,
    installed_kind_classes,
    threshold_owner,
)
from unlearning import plugins
from unlearning.tasks import Task, task_for
from unlearning.verify import Verdict

if TYPE_CHECKING:
    from pipelines.adapters.registry import RegisteredModel
    from pipelines.adapters.settings import Settings
    from pipelines.adapters.validation import ForgetSet, ValidationSummary
    from unlearning.methods import UnlearningMethod, UnlearningProblem


class KindError(ValueError):
    """The request does not fit the kind of model it names (wrong forget form, misplaced thresholds)."""


@dataclass(frozen=True)
class Assessment:
    metrics: list[MetricEvidence]
    verdict: Verdict
    evidence: Evidence


@dataclass(frozen=True)
class Figures:
    """A record's report charts, as data URIs; None where a kind has nothing to draw."""

    metrics: str | None = None
    samples: str | None = None


class ModelKind(ABC):
    name: ClassVar[str]  # the kind's own name (the record's `unlearning.task`)
    # The architectures' task_kind this kind serves; None: its name. Several kinds may serve one task_kind
    # (a generator forgets a feature or an identity); the request's forget form picks among them.
    serves: ClassVar[str | None] = None
    forget_form: ClassVar[type[ForgetTarget]]
    Thresholds: ClassVar[type[KindThresholds]]
    uses_retain: ClassVar[bool] = True  # whether a request for this kind names retain data
    coalesces: ClassVar[bool] = True  # whether requests for one model can share one unlearning run

    def task(self, model: nn.Module) -> Task:
        return task_for(model)

    def check_request(self, request: DeletionRequest) -> None:
        """Refuse, before any work, a request whose parts are meant for another kind of model."""
        if not isinstance(request.forget, self.forget_form):
            raise KindError(
                f"forget: {request.model} is a {self.name} model, which forgets {self.forget_form.form_summary}; "
                f"the request names {type(request.forget).form_summary}"
            )
        if request.retain is not None and not self.uses_retain:
            raise KindError(f"retain: {request.model} is a {self.name} model, whose requests name no retain data")
        if request.retain is None and self.uses_retain:
            raise KindError(f"retain: {request.model} is a {self.name} model; name the held-out sets it must keep (retain.evaluation)")
        self.thresholds(request)

    def thresholds(self, request: DeletionRequest) -> Any:
        """The request's thresholds for this kind; one that belongs to another kind is named and refused,
        since silently ignoring it would verify the request against criteria nobody asked for."""
        own = set(self.Thresholds.model_fields)
        for name in request.thresholds:
            if name not in own:
                owner = threshold_owner(name)
                raise KindError(
                    f"thresholds.{name}: applies to {owner} models, but {request.model} is a {self.name} model; "
                    f"its thresholds are {sorted(own)}"
                )
        return self.Thresholds(**request.thresholds).verify_thresholds()

    @abstractmethod
    def pull_data(self, settings: Settings, request: DeletionRequest, original: RegisteredModel) -> Any:
        """The request's data, fetched at its revision and decoded once (every later stage reuses it)."""

    @abstractmethod
    def provenance(self, data: Any) -> dict[str, Any]:
        """Audit record fields: forget_data, retain_data, evaluation_data (hashes and counts, no content)."""

    @abstractmethod
    def forget_set(self, request: DeletionRequest, data: Any, model: nn.Module) -> ForgetSet:
        """The forget examples and the schema they must meet to be what `model` takes (see `validate`)."""

    def validate(self, request: DeletionRequest, data: Any, model: nn.Module) -> ValidationSummary:
        """Great Expectations on the forget data, against what `model` takes; raises ForgetSetValidationError
        naming each failure."""
        from pipelines.adapters.validation import validate_forget_set

        forget_set = self.forget_set(request, data, model)
        return validate_forget_set(forget_set.inputs, forget_set.targets, forget_set.schema, forget_set.evaluation_inputs)

    @abstractmethod
    def forget_examples(self, data: Any) -> int:
        """How many examples the request forgets (the record's count)."""

    @abstractmethod
    def problem(self, method: UnlearningMethod, original: RegisteredModel, datas: list[Any], device: torch.device,
                model: nn.Module) -> tuple[UnlearningProblem, dict[str, Any]]:
        """The unlearning problem for one request, or several coalesced ones (`datas`), on `model` (a copy of
        the original), and what the record says about the data it used."""

    @abstractmethod
    def assess(self, request: DeletionRequest, original: nn.Module, unlearned: nn.Module, data: Any,
               device: torch.device, seeds: dict[str, int]) -> Assessment:
        """Score before and after, check the request's thresholds, and describe the evidence."""

    @abstractmethod
    def export_inputs(self, data: Any) -> torch.Tensor:
        """Inputs for the ONNX export example and the onnxruntime parity check (never forget data)."""

    def figures(self, settings: Settings, record) -> Figures:
        return Figures()

    def cache_inputs(self, data: Any) -> list[str]:
        """What the persisted unlearn result depends on besides the request and the weights (hashes)."""
        return []

    def erasable_examples(self, data: Any) -> Any:
        """The training examples the request forgets, as a PairSet, to erase from the training data after
        promotion (pipelines/erasure/training_data.py); None where the request names no training examples."""
        return None


# The installed kinds (entry point group `erasure.kinds`, Erasure's own included), by name: one instance each.
_INSTANCES: dict[type, ModelKind] = {}


class _InstalledKinds(Mapping):
    def __getitem__(self, name: str) -> ModelKind:
        kind_class = installed_kind_classes()[name]
        if kind_class not in _INSTANCES:
            _INSTANCES[kind_class] = kind_class()
        return _INSTANCES[kind_class]

    def __iter__(self) -> Iterator[str]:
        return iter(installed_kind_classes())

    def __len__(self) -> int:
        return len(installed_kind_classes())


KINDS: Mapping[str, ModelKind] = _InstalledKinds()


def register_kind(kind_class: type[ModelKind]) -> type[ModelKind]:
    """Class decorator: make a kind of model known to the flow, the request schema and the report, also when
    its package declares no entry point."""
    plugins.register(plugins.KIND_GROUP, kind_class.name, kind_class)
    return kind_class


class UnknownKindError(LookupError):
    pass


def kind_named(name: str) -> ModelKind:
    if name not in KINDS:
        broken = plugins.load_group(plugins.KIND_GROUP).broken.get(name)
        if broken is not None:
            raise UnknownKindError(f"kind of model {name!r} is installed but failed to load ({broken.source}): {broken.error}")
        raise UnknownKindError(f"unknown kind of model {name!r}; known: {sorted(KINDS)}")
    return KINDS[name]


def served_task_kind(kind: ModelKind) -> str:
    return kind.serves or kind.name


def kind_of(model: nn.Module, forget: ForgetTarget | None = None) -> ModelKind:
    """The plug-in for a model: among the kinds serving the task_kind its architecture declares, the one
    whose forget form the request's `forget` is; else the primary kind (named like the task_kind), whose
    `check_request` then names the mismatch."""
    return kind_for_task(getattr(model, "task_kind", None) or type(model).__name__, forget)


def kind_for_task(task_kind: str, forget: ForgetTarget | None = None) -> ModelKind:
    """`kind_of` for a task kind named directly (an architecture's declaration, before any model is built)."""
    serving = [kind for kind in KINDS.values() if served_task_kind(kind) == task_kind]
    if not serving:
        raise UnknownKindError(f"unknown kind of model {task_kind!r}; known: {sorted({served_task_kind(k) for k in KINDS.values()})}")
    if forget is not None:
        matching = next((kind for kind in serving if isinstance(forget, kind.forget_form)), None)
        if matching is not None:
            return matching
    return next((kind for kind in serving if kind.name == task_kind), serving[0])


# Records written before kinds were named in them (schema < 2.1) all came from restorers.
KIND_OF_UNNAMED_RECORDS = "restoration"


def kind_of_record(record) -> ModelKind:
    """The plug-in for an audit record's model, from the kind the record names."""
    return kind_named(record.unlearning.get("task") or KIND_OF_UNNAMED_RECORDS)


def binomial_stderr(value: float, examples: int) -> float:
    return math.sqrt(value * (1 - value) / examples) if examples > 0 else float("nan")


def check_metrics(verdict: Verdict) -> list[MetricEvidence]:
    return [
        MetricEvidence(name=c.name, value=c.value, threshold=c.threshold, comparator=c.comparator, passed=c.passed)
        for c in verdict.checks
    ]


# Evaluations shared by the requests of one coalesced run (pipelines/operations/coalesce.py): same model, same set.
_SHARED_EVALUATIONS: ContextVar[dict | None] = ContextVar("shared_evaluations", default=None)


@contextmanager
def shared_evaluation() -> Iterator[None]:
    """Within this block, `evaluated` computes a model's result on a set of the same content once: the
    members of a coalesced run are all checked on one shared model, mostly on the same held-out sets."""
    token = _SHARED_EVALUATIONS.set({})
    try:
        yield
    finally:
        _SHARED_EVALUATIONS.reset(token)


def _tensor_digest(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def evaluated(model: nn.Module, tensors: tuple[torch.Tensor, ...], device, compute: Callable[[], Any]) -> Any:
    """compute(): once per model and content of `tensors` inside `shared_evaluation()`, every time outside."""
    memo = _SHARED_EVALUATIONS.get()
    if memo is None:
        return compute()
    key = (id(model), str(device), *(_tensor_digest(tensor) for tensor in tensors))
    if key not in memo:
        memo[key] = (model, compute())  # the model is kept so that its id cannot be reused meanwhile
    return memo[key][1]
