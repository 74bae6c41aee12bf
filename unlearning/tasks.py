"""What kind of prediction a model makes, as far as unlearning needs to know.

A supervised method is written once against this interface and runs on both supervised kinds:
restoration (pairs of degraded and clean images, per-example MSE, "doing nothing" = returning the
input) and classification (labels, cross-entropy, "doing nothing" = knowing nothing, i.e. uniform
logits). Every Task subclass registers itself under its `kind`; a model declares the kind it solves
(`task_kind`), so `task_for` never branches on a name.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch.nn import functional


TASKS: dict[str, type["Task"]] = {}


class Task(ABC):
    kind: ClassVar[str]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            TASKS[cls.kind] = cls

    @classmethod
    def for_model(cls, model: torch.nn.Module) -> "Task":
        """This task configured for `model` (e.g. its number of classes)."""
        return cls()

    @abstractmethod
    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-example training loss (shape N)."""

    @abstractmethod
    def do_nothing_loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-example loss of a model that learned nothing about these examples: the ascent bound."""

    @abstractmethod
    def divergence(self, outputs: torch.Tensor, reference_outputs: torch.Tensor) -> torch.Tensor:
        """Per-example distance from `outputs` to a reference model's outputs (distillation, adversarial term)."""

    @abstractmethod
    def do_nothing_divergence(self, inputs: torch.Tensor, reference_outputs: torch.Tensor) -> torch.Tensor:
        """Per-example distance from the do-nothing output to the reference outputs."""


class Restoration(Task):
    kind = "restoration"

    def loss(self, outputs, targets):
        return (outputs.float() - targets).pow(2).flatten(1).mean(dim=1)

    def do_nothing_loss(self, inputs, targets):
        return self.loss(inputs, targets)

    def divergence(self, outputs, reference_outputs):
        return self.loss(outputs, reference_outputs.float())

    def do_nothing_divergence(self, inputs, reference_outputs):
        return self.loss(inputs, reference_outputs.float())


class Classification(Task):
    kind = "classification"

    def __init__(self, classes: int):
        self.classes = classes

    @classmethod
    def for_model(cls, model):
        return cls(model.config.classes)

    def loss(self, outputs, targets):
        return functional.cross_entropy(outputs.float(), targets.long(), reduction="none")

    def do_nothing_loss(self, inputs, targets):
        # Uniform prediction: the cross-entropy of a model that has no idea, log(classes).
        return torch.full((inputs.shape[0],), math.log(self.classes), device=inputs.device)

    def divergence(self, outputs, reference_outputs):
        """KL(reference || model), the SCRUB distillation distance."""
        reference = functional.log_softmax(reference_outputs.float(), dim=1)
        return functional.kl_div(functional.log_softmax(outputs.float(), dim=1), reference, log_target=True,
                                 reduction="none").sum(dim=1)

    def do_nothing_divergence(self, inputs, reference_outputs):
        uniform = torch.zeros_like(reference_outputs, dtype=torch.float32)
        return self.divergence(uniform, reference_outputs)


RESTORATION = Restoration()
# The kinds the shared supervised loop serves (a method's default `task_kinds`).
TASK_KINDS = ("restoration", "classification")


class UnknownTaskError(ValueError):
    pass


def task_for(model: torch.nn.Module) -> Task:
    """The task a model's architecture solves (its `task_kind`), configured for that model."""
    kind = getattr(model, "task_kind", None)
    if kind not in TASKS:
        raise UnknownTaskError(f"{type(model).__name__} declares task_kind {kind!r}; known task kinds: {sorted(TASKS)}")
    return TASKS[kind].for_model(model)


class Generation(Task):
    """A generator (z -> image). Generation methods run their own adversarial loops over generated
    samples, so the per-example supervised losses below have no meaning here and refuse to run."""

    kind = "generation"

    def _refuse(self, what: str):
        raise NotImplementedError(
            f"Generation.{what}: generation methods train adversarially and do not use per-example supervised losses"
        )

    def loss(self, outputs, targets):
        self._refuse("loss")

    def do_nothing_loss(self, inputs, targets):
        self._refuse("do_nothing_loss")

    def divergence(self, outputs, reference_outputs):
        self._refuse("divergence")

    def do_nothing_divergence(self, inputs, reference_outputs):
        self._refuse("do_nothing_divergence")


GENERATION = Generation()


class IdentityErasure(Generation):
    """A generator that must stop producing one identity (GUIDE): its own kind of problem, so that the
    feature-forgetting methods are refused for it and GUIDE for a feature."""

    kind = "identity"


IDENTITY = IdentityErasure()
