"""Random labels (Golatkar et al.; SalUn's RL): train the forget examples towards a wrong class.

Each forget example gets a label drawn uniformly from the other classes, fresh each step, alongside
the retain loss. Classification only: a restoration target has no "random wrong label".
"""

from __future__ import annotations

import torch
from pydantic import Field

from unlearning.data.pairs import PairSet
from unlearning.methods.base import MethodParams, UnlearningMethod, UnlearningProblem, register


class RandomLabelsParams(MethodParams):
    retain_weight: float = Field(1.0, ge=0.0, le=100.0)


def random_wrong_labels(labels: torch.Tensor, classes: int, generator: torch.Generator) -> torch.Tensor:
    # Adding 1..classes-1 modulo classes never lands on the true label.
    shift = torch.randint(1, classes, labels.shape, generator=generator).to(labels.device)
    return (labels.long() + shift) % classes


def random_labels_loss(problem: UnlearningProblem, forget_batch: PairSet, generator: torch.Generator) -> torch.Tensor:
    wrong = random_wrong_labels(forget_batch.targets, problem.task.classes, generator)
    return problem.task.loss(problem.model(forget_batch.inputs), wrong).mean()


@register
class RandomLabels(UnlearningMethod):
    name = "random_labels"
    Params = RandomLabelsParams
    task_kinds = ("classification",)

    def prepare(self, problem: UnlearningProblem) -> None:
        self.label_generator = torch.Generator().manual_seed(self.params.seed + 1)

    def loss(self, problem: UnlearningProblem, forget_batch: PairSet, retain_batch: PairSet | None) -> torch.Tensor:
        forget_loss = random_labels_loss(problem, forget_batch, self.label_generator)
        return forget_loss + self.params.retain_weight * self.retain_loss(problem, retain_batch)
