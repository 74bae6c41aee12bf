"""Membership inference: does the model still treat the forget set like training data?

Three attacks, cheapest first. Each returns a number a reader can compare with a retrained model's:
- `loss_threshold_auc`: AUC of "lower loss = member" separating forget (members) from held-out
  examples (non-members). 0.5 = indistinguishable.
- `svc_mia_efficacy`: SalUn's MIA-efficacy. An SVC learns member vs non-member from the model's
  confidence on retain (members) vs test (non-members); the score is the share of forget examples it
  calls non-members (higher = more forgotten; a retrained model sets the reference).
- `ShadowAttack` (LiRA-style, Carlini et al. 2022): shadow models each trained on a random half of a
  candidate pool give, per example, Gaussians of the logit-scaled confidence when IN and OUT of
  training; the per-example likelihood ratio scores membership. Costs one training run per shadow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from sklearn.svm import SVC
from torch import nn

from unlearning.data.pairs import PairSet, concat
from unlearning.metrics import predict
from unlearning.tasks import Task


def per_example_loss(model: nn.Module, pairs: PairSet, task: Task, device: torch.device) -> np.ndarray:
    outputs = predict(model, pairs.inputs, device)
    return task.loss(outputs, pairs.targets).numpy()


def true_class_confidence(model: nn.Module, pairs: PairSet, device: torch.device) -> np.ndarray:
    probabilities = predict(model, pairs.inputs, device).softmax(dim=1)
    return probabilities.gather(1, pairs.targets.long().view(-1, 1)).squeeze(1).numpy()


def membership_auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """AUC of telling members from non-members when a higher score means "member"."""
    labels = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    return float(roc_auc_score(labels, np.r_[member_scores, nonmember_scores]))


def loss_threshold_auc(model: nn.Module, members: PairSet, nonmembers: PairSet, task: Task, device: torch.device) -> float:
    """Loss-threshold attack AUC, members (forget set) vs non-members (held-out)."""
    return membership_auc(-per_example_loss(model, members, task, device), -per_example_loss(model, nonmembers, task, device))


def svc_mia_efficacy(
    model: nn.Module, retain: PairSet, test: PairSet, forget: PairSet, device: torch.device, seed: int = 0
) -> float:
    """Share of forget examples an SVC (trained on retain=member vs test=non-member confidences) calls non-member."""
    rng = np.random.default_rng(seed)
    size = min(len(retain), len(test))  # balanced shadow sets, as in SalUn's SVC_MIA
    members = true_class_confidence(model, retain, device)[rng.permutation(len(retain))[:size]]
    nonmembers = true_class_confidence(model, test, device)[rng.permutation(len(test))[:size]]
    features = np.r_[members, nonmembers].reshape(-1, 1)
    attack = SVC(C=3, gamma="auto", kernel="rbf").fit(features, np.r_[np.ones(size), np.zeros(size)])
    predicted_member = attack.predict(true_class_confidence(model, forget, device).reshape(-1, 1))
    return float(1.0 - predicted_member.mean())


def _logit_confidence(model: nn.Module, pairs: PairSet, device: torch.device) -> np.ndarray:
    confidence = np.clip(true_class_confidence(model, pairs, device), 1e-7, 1 - 1e-7)
    return np.log(confidence) - np.log1p(-confidence)


@dataclass
class ShadowAttack:
    """Per-example LiRA statistics over a candidate pool; score any target model cheaply afterwards."""

    candidates: PairSet
    mean_in: np.ndarray
    std_in: np.ndarray
    mean_out: np.ndarray
    std_out: np.ndarray

    @classmethod
    def fit(
        cls,
        candidates: PairSet,
        always_in: PairSet,
        train: Callable[[PairSet, int], nn.Module],
        shadows: int,
        device: torch.device,
        seed: int = 0,
    ) -> "ShadowAttack":
        """`train(set, seed)` returns a model like the target's; each shadow sees `always_in` plus a
        random half of `candidates`, so every candidate is IN about half the shadows."""
        rng = np.random.default_rng(seed)
        statistics, memberships = [], []
        for shadow in range(shadows):
            inside = rng.random(len(candidates)) < 0.5
            chosen = candidates.subset(torch.from_numpy(np.flatnonzero(inside)))
            model = train(concat([always_in, chosen], "shadow-train"), seed * 1000 + shadow)
            statistics.append(_logit_confidence(model, candidates, device))
            memberships.append(inside)
        statistics, memberships = np.stack(statistics), np.stack(memberships)

        def gaussian(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            count = mask.sum(axis=0).clip(min=1)
            mean = (statistics * mask).sum(axis=0) / count
            variance = (((statistics - mean) ** 2) * mask).sum(axis=0) / count
            # A global floor keeps examples seen IN (or OUT) by only one shadow from getting zero spread.
            return mean, np.sqrt(variance + statistics.var(axis=0).mean() * 0.1 + 1e-6)

        mean_in, std_in = gaussian(memberships)
        mean_out, std_out = gaussian(~memberships)
        return cls(candidates, mean_in, std_in, mean_out, std_out)

    def scores(self, model: nn.Module, device: torch.device) -> np.ndarray:
        """Per-candidate log-likelihood ratio IN vs OUT; higher = more likely a member of `model`'s training."""
        observed = _logit_confidence(model, self.candidates, device)

        def log_density(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
            return -0.5 * ((observed - mean) / std) ** 2 - np.log(std)

        return log_density(self.mean_in, self.std_in) - log_density(self.mean_out, self.std_out)

    def auc(self, model: nn.Module, members: np.ndarray, device: torch.device) -> float:
        """AUC of the per-example scores separating candidates flagged in `members` from the rest."""
        scores = self.scores(model, device)
        return membership_auc(scores[members], scores[~members])
