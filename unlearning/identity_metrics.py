"""How identity unlearning is scored: does the generator still reproduce the one image (and its other
views) when the image is inverted, are other identities reproduced as before, and is the generator as a
whole unchanged (FID_pre) and still close to real digits (FID/KID)?

Similarities are measured with the *held-out* identity network, never the one the method trained against.
"""

from __future__ import annotations

import torch
from torch import nn

from unlearning.generation_metrics import features, frechet_distance, generate_images, kernel_inception_distance
from unlearning.identity import identity_similarity
from unlearning.verify import IdentityScores


@torch.no_grad()
def reconstructions(generator: nn.Module, encoder: nn.Module, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """G(E(x)) for each image, N x 1 x 8 x 8 on the CPU: what the generator makes of an inverted image."""
    generator.eval(), encoder.eval()
    return generator.synthesis(encoder(images.reshape(-1, 1, 8, 8).to(device))).float().cpu()


@torch.no_grad()
def similarities(verifier: nn.Module, images: torch.Tensor, outputs: torch.Tensor, device: torch.device) -> torch.Tensor:
    verifier.eval()
    return identity_similarity(verifier, images.to(device), outputs.to(device)).cpu()


@torch.no_grad()
def largest_pair_similarity(verifier: nn.Module, outputs: torch.Tensor, device: torch.device) -> float:
    """The largest identity similarity between two *different* images' outputs: near 1 means two
    identities collapsed to one output (what GUIDE's users saw)."""
    embeddings = verifier(outputs.to(device)).float().cpu()
    cosines = embeddings @ embeddings.T
    cosines.fill_diagonal_(-float("inf"))
    return float(cosines.max())


def score_identity(
    generator: nn.Module, encoder: nn.Module, verifier: nn.Module, feature_net: nn.Module, identity: torch.Tensor,
    views: torch.Tensor, others: torch.Tensor, bank: torch.Tensor, real_features: torch.Tensor, device: torch.device,
    kid_subsets: int = 50, kid_subset_size: int = 200,
) -> IdentityScores:
    """`generator`'s IdentityScores: the identity image (1 image), its augmented `views`, the `others`
    (other identities' images), and FID/KID of its samples for the latent `bank` against `real_features`."""
    identity = identity.reshape(1, 1, 8, 8)
    own = similarities(verifier, identity, reconstructions(generator, encoder, identity, device), device)
    on_views = similarities(verifier, views, reconstructions(generator, encoder, views, device), device)
    everyone = torch.cat([identity, others.reshape(-1, 1, 8, 8)])
    outputs = reconstructions(generator, encoder, everyone, device)
    on_others = similarities(verifier, everyone[1:], outputs[1:], device)
    generated = features(feature_net, generate_images(generator, bank, device), device)
    kid, _ = kernel_inception_distance(generated, real_features, kid_subsets, kid_subset_size, seed=0)
    return IdentityScores(
        identity=float(own[0]), identity_views=float(on_views.mean()), others=tuple(on_others.tolist()),
        largest_pair_similarity=largest_pair_similarity(verifier, outputs, device),
        fid=frechet_distance(generated, real_features), kid=kid,
    )


def fid_between_generators(
    original: nn.Module, unlearned: nn.Module, feature_net: nn.Module, bank: torch.Tensor, device: torch.device
) -> float:
    """FID_pre (GUIDE): FID between the unlearned and the original generator's samples for the same latents."""
    return frechet_distance(features(feature_net, generate_images(unlearned, bank, device), device),
                            features(feature_net, generate_images(original, bank, device), device))
