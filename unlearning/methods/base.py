"""What an unlearning method is: a loss over forget and retain batches, its knobs, and a name.

The loop that applies the loss is shared here and never copied into a method. A method is one file with
one `UnlearningMethod` subclass, listed under the entry point group `erasure.methods` of its package
(Erasure's own in pyproject.toml); `@register` also makes one known from code, without an entry point.
"""

from __future__ import annotations

import copy
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn
from tqdm.auto import tqdm

from unlearning import plugins
from unlearning.data.pairs import PairSet
from unlearning.device import autocast
from unlearning.tasks import RESTORATION, TASK_KINDS, Task


class MethodParams(BaseModel):
    """Knobs every loop-based method shares; a method subclasses this to add its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(200, ge=1, le=100_000)
    learning_rate: float = Field(1e-4, gt=0, le=1.0)
    batch_size: int = Field(16, ge=1, le=4096)
    seed: int = 0


@dataclass
class UnlearningProblem:
    """Everything a method may look at. `original` is a frozen copy of the model before unlearning.

    `check` is a held-out split of the forget data (never trained on) for stop rules: stopping on the
    training forget pairs overshoots on unseen ones (RESEARCH.md).
    """

    model: nn.Module
    forget: PairSet
    retain: PairSet | None
    device: torch.device
    task: Task = field(default=RESTORATION)
    check: PairSet | None = None

    def __post_init__(self) -> None:
        self.model.to(self.device)
        self.original = copy.deepcopy(self.model).eval().requires_grad_(False)


@dataclass(frozen=True)
class UnlearningRun:
    steps: int
    seconds: float


class UnlearningError(RuntimeError):
    """The method could not run on this problem (missing data, unknown name, bad params)."""


class DivergenceError(UnlearningError):
    """Loss or weights became NaN/inf: the run stops before the model is used anywhere."""


class InapplicableMethodError(UnlearningError):
    """The method has no meaning for this task kind (e.g. random labels for restoration)."""


class UnlearningMethod(ABC):
    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]] = MethodParams
    needs_retain: ClassVar[bool] = False
    task_kinds: ClassVar[tuple[str, ...]] = TASK_KINDS

    def __init__(self, params: MethodParams):
        self.params = params
        self.step = 0

    @classmethod
    def check_applicable(cls, task_kind: str) -> None:
        if task_kind not in cls.task_kinds:
            raise InapplicableMethodError(
                f"method {cls.name!r} does not apply to {task_kind} tasks; it applies to {list(cls.task_kinds)}"
            )

    def check_problem(self, problem: UnlearningProblem) -> None:
        """Refuse a problem this method cannot run on, before anything changes."""
        self.check_applicable(problem.task.kind)
        if self.needs_retain and (problem.retain is None or len(problem.retain) == 0):
            raise UnlearningError(f"method {self.name!r} needs retain data and the request provides none")

    def prepare(self, problem: UnlearningProblem) -> None:
        """Called once before the loop (e.g. to compute a saliency mask)."""

    def after_backward(self, problem: UnlearningProblem) -> None:
        """Called after each backward pass, before the optimiser step (e.g. to mask gradients)."""

    def should_stop(self, problem: UnlearningProblem) -> bool:
        """Called after each optimiser step; True ends the run early."""
        return False

    @abstractmethod
    def loss(self, problem: UnlearningProblem, forget_batch: PairSet, retain_batch: PairSet | None) -> torch.Tensor:
        """The quantity one optimiser step minimises."""

    def run(self, problem: UnlearningProblem, show_progress: bool = True) -> UnlearningRun:
        """Change `problem.model` in place; stops with DivergenceError if anything becomes non-finite."""
        self.check_problem(problem)
        started = time.perf_counter()
        generator = torch.Generator().manual_seed(self.params.seed)
        self.prepare(problem)
        model = problem.model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=self.params.learning_rate)
        steps_done = 0
        for step in tqdm(range(self.params.steps), desc=f"unlearn[{self.name}]", disable=not show_progress, mininterval=2):
            self.step = step
            forget_batch = _sample(problem.forget, self.params.batch_size, generator, problem.device)
            retain_batch = None
            if problem.retain is not None and len(problem.retain):
                retain_batch = _sample(problem.retain, self.params.batch_size, generator, problem.device)
            with autocast(problem.device):
                loss = self.loss(problem, forget_batch, retain_batch)
            if not torch.isfinite(loss):
                raise DivergenceError(f"method {self.name!r}: loss became {loss.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.after_backward(problem)
            optimizer.step()
            steps_done = step + 1
            if self.should_stop(problem):
                break
            model.train()  # a stop rule may have switched to eval mode to score the check split
        return self.finish(problem, steps_done, started)

    def finish(self, problem: UnlearningProblem, steps: int, started: float) -> UnlearningRun:
        if not all(torch.isfinite(p).all() for p in problem.model.parameters()):
            raise DivergenceError(f"method {self.name!r}: weights contain NaN/inf after {steps} steps")
        problem.model.eval()
        return UnlearningRun(steps=steps, seconds=time.perf_counter() - started)

    def forget_loss(self, problem: UnlearningProblem, batch: PairSet, bounded: bool) -> torch.Tensor:
        """Per-example forget loss; `bounded` caps each at the do-nothing loss, where ascent stops pushing."""
        loss = problem.task.loss(problem.model(batch.inputs), batch.targets)
        if bounded:
            # min() has zero gradient past the cap, so an example that is already forgotten stops pushing.
            loss = torch.minimum(loss, problem.task.do_nothing_loss(batch.inputs, batch.targets))
        return loss

    def retain_loss(self, problem: UnlearningProblem, batch: PairSet | None) -> torch.Tensor:
        if batch is None:
            return torch.zeros((), device=problem.device)
        return problem.task.loss(problem.model(batch.inputs), batch.targets).mean()


def _sample(pairs: PairSet, size: int, generator: torch.Generator, device: torch.device) -> PairSet:
    batch = torch.randint(len(pairs), (min(size, len(pairs)),), generator=generator)
    return PairSet(pairs.name, pairs.inputs[batch].to(device), pairs.targets[batch].to(device))


def batches(pairs: PairSet, size: int, device: torch.device):
    """`pairs` in order, `size` at a time, on `device`."""
    for start in range(0, len(pairs), size):
        yield PairSet(pairs.name, pairs.inputs[start : start + size].to(device), pairs.targets[start : start + size].to(device))


# The installed methods (entry point group `erasure.methods`, Erasure's own included), by name.
METHODS: Mapping[str, type[UnlearningMethod]] = plugins.PluginMapping(plugins.METHOD_GROUP)


def register(method_class: type[UnlearningMethod]) -> type[UnlearningMethod]:
    """Class decorator: make a method selectable by its `name`, also when its package declares no entry point."""
    plugins.register(plugins.METHOD_GROUP, method_class.name, method_class)
    return method_class


class UnknownMethodError(UnlearningError):
    pass


class MethodParamsError(UnlearningError):
    pass


def create_method(name: str, params: dict[str, Any], task_kind: str | None = None) -> UnlearningMethod:
    """A method instance from its registered name and raw params, with errors that list what exists.

    With `task_kind`, a method that does not apply to that kind of task is refused here, at selection.
    """
    if name not in METHODS:
        broken = plugins.load_group(plugins.METHOD_GROUP).broken.get(name)
        if broken is not None:
            raise UnknownMethodError(f"method {name!r} is installed but failed to load ({broken.source}): {broken.error}")
        raise UnknownMethodError(f"unknown method {name!r}; registered methods: {sorted(METHODS)}")
    method_class = METHODS[name]
    if task_kind is not None:
        method_class.check_applicable(task_kind)
    try:
        return method_class(method_class.Params(**params))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        allowed = sorted(method_class.Params.model_fields)
        raise MethodParamsError(f"method {name!r} params invalid ({problems}); allowed params: {allowed}") from error
