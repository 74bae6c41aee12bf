"""What the identity unlearning methods (GUIDE and its baseline) share: the problem they solve, the
target latent, and the three losses, as GUIDE's code computes them (KHU-AGI/GUIDE, unlearn.py).

An identity problem is an `UnlearningProblem` whose `model` is a `DigitsGAN` and whose `forget` set
holds the one identity image (1 x 1 x 8 x 8); it carries the frozen helper networks the losses need:
the inversion encoder, the identity network used *in the loss* (never the one verification uses) and
the feature network whose activations make the perceptual distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from unlearning.data.pairs import PairSet
from unlearning.identity import identity_similarity, perceptual_distance
from unlearning.methods.base import UnlearningError, UnlearningProblem
from unlearning.models.gan import DigitsGAN
from unlearning.tasks import IDENTITY


@dataclass
class IdentityProblem(UnlearningProblem):
    encoder: nn.Module | None = None
    identity_net: nn.Module | None = None
    perceptual_net: nn.Module | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("encoder", "identity_net", "perceptual_net"):
            helper = getattr(self, name)
            if helper is not None:
                helper.to(self.device).eval().requires_grad_(False)

    @property
    def identity_image(self) -> torch.Tensor:
        return self.forget.inputs.reshape(-1, 1, 8, 8)[:1].to(self.device)


def identity_problem(model: DigitsGAN, image: torch.Tensor, encoder: nn.Module, identity_net: nn.Module,
                     perceptual_net: nn.Module, device: torch.device) -> IdentityProblem:
    """The problem of making `model` stop reproducing the identity of `image` (one 8x8 digit)."""
    forget = PairSet("identity", image.reshape(1, 1, 8, 8).float(), torch.zeros(1))
    return IdentityProblem(model=model, forget=forget, retain=None, device=device, task=IDENTITY,
                           encoder=encoder, identity_net=identity_net, perceptual_net=perceptual_net)


def check_identity_problem(problem: UnlearningProblem, method_name: str) -> None:
    if not isinstance(problem, IdentityProblem):
        raise UnlearningError(f"method {method_name!r} needs an identity problem (one image and its helper networks); "
                              f"got {type(problem).__name__}")
    if not isinstance(problem.model, DigitsGAN):
        raise UnlearningError(f"method {method_name!r} needs a DigitsGAN; got {type(problem.model).__name__}")
    if len(problem.forget) != 1:
        raise UnlearningError(f"method {method_name!r} unlearns one identity image; got {len(problem.forget)}")
    missing = [name for name in ("encoder", "identity_net", "perceptual_net") if getattr(problem, name) is None]
    if missing:
        raise UnlearningError(f"method {method_name!r}: the identity problem lacks {missing}")


def opposite_target(w_u: torch.Tensor, w_avg: torch.Tensor, distance: float) -> torch.Tensor:
    """GUIDE's target latent: `distance` from w_avg, on the far side of w_avg from w_u,
    w_t = w_avg - d (w_u - w_avg) / |w_u - w_avg| (the norm over the whole latent, as the paper's code)."""
    offset = w_u - w_avg
    norm = offset.norm()
    if not torch.isfinite(norm) or norm <= 0:
        raise UnlearningError(f"GUIDE: the identity's latent is {norm.item()} from w_avg; no direction to move away along")
    return w_avg - distance * offset / norm


@dataclass(frozen=True)
class LossWeights:
    """The paper's local (and adjacency) weights: feature MSE 0.01, perceptual 1.0, identity 0.1."""

    feature_mse: float = 0.01
    perceptual: float = 1.0
    identity: float = 0.1


def matching_loss(problem: IdentityProblem, w_from: torch.Tensor, w_to: torch.Tensor, weights: LossWeights) -> torch.Tensor:
    """GUIDE's local loss between G(w_from) (trained) and G_src(w_to) (frozen source), averaged over the
    rows: 0.01 MSE of the synthesis features + 1.0 perceptual + 0.1 (1 - identity cosine)."""
    synthesis, source = problem.model.synthesis, problem.original.synthesis
    features = synthesis.features(w_from)
    with torch.no_grad():
        target_features = source.features(w_to)
        target_images = source.render(target_features)
    images = synthesis.render(features)
    loss = weights.feature_mse * (features.float() - target_features.float()).pow(2).mean()
    loss = loss + weights.perceptual * perceptual_distance(problem.perceptual_net, images, target_images).mean()
    return loss + weights.identity * (1 - identity_similarity(problem.identity_net, images, target_images)).mean()


def adjacency_offsets(w_u: torch.Tensor, w_random: torch.Tensor, max_alpha: float, generator: torch.Generator) -> torch.Tensor:
    """delta = alpha unit(w_r - w_u), alpha ~ U(0, max_alpha), one row per random latent w_r: steps from
    w_u towards random identities, applied alike to w_u and w_t so the neighbourhood moves with it."""
    alpha = (torch.rand(w_random.shape[0], 1, generator=generator) * max_alpha).to(w_u.device)
    direction = w_random - w_u
    return alpha * direction / direction.norm(dim=1, keepdim=True).clamp(min=1e-8)


def preservation_loss(problem: IdentityProblem, w: torch.Tensor) -> torch.Tensor:
    """GUIDE's global preservation loss: perceptual distance between G(w) and G_src(w), averaged over w."""
    with torch.no_grad():
        reference = problem.original.synthesis(w)
    return perceptual_distance(problem.perceptual_net, problem.model.synthesis(w), reference).mean()
