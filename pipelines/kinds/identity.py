"""Identity (GUIDE) on the digits generator: "my face must not be producible; here is one photo of me".

The forget target is one image named by a DVC path (a single held-out digit instance standing for a
person's photo). It serves the same architectures as the generation kind (`serves = "generation"`); a
request's `forget: {identity: ...}` form picks this kind, `forget: {feature: ...}` the generation one.

The image is personal data. The record, reports and MLflow keep its sha256 and size (the datastore's
provenance), never its pixels; no figure shows the image or what the generator made of it before.
Verification inverts the image with the registered encoder and measures, with the *held-out* identity
network (never the one in the loss), how much of the identity the generator still reproduces, on the
image and on deterministic augmented views of it ("other photos of the same person"); that other
identities (a fixed DVC set, other digit classes) are reproduced as before and have not collapsed onto
one output; and FID_pre (unlearned vs original generator on one latent bank) plus FID/KID against real
digits in the feature network's space. The perceptual distance of GUIDE's loss is LPIPS's recipe on the
feature network's activations: LPIPS's weights cannot be downloaded here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from pydantic import Field, field_validator

from pipelines.adapters import datastore, validation
from pipelines.audit.record import Evidence, MetricEvidence
from pipelines.kinds.base import (
    Assessment,
    Figures,
    ForgetTarget,
    KindError,
    KindThresholds,
    ModelKind,
    Strict,
    check_metrics,
    register_kind,
)
from pipelines.kinds.files import DecodedFile, decode_file
from pipelines.kinds.generation import QualityReference, _model_ref, load_helper
from unlearning.generation_metrics import features, latent_bank
from unlearning.identity import augmented_views, typical_latent_distance
from unlearning.identity_metrics import fid_between_generators, reconstructions, score_identity, similarities
from unlearning.verify import IdentityScores, IdentityThresholds, verify_identity


class NothingToEraseError(KindError):
    """The served generator does not reproduce the request's identity before any unlearning."""


PERCEPTUAL_NOTE = ("perceptual distance = LPIPS's recipe (unit-normalised activations, squared differences, "
                   "averaged per layer, summed) on the registered feature network; LPIPS's own weights cannot be "
                   "downloaded here")


class DvcFile(Strict):
    path: str = Field(description="DVC-tracked set file")
    rev: str = Field("HEAD", description="git revision of the data repository the path is read at")


class IdentityHelpers(Strict):
    """The registered networks GUIDE needs besides the generator (name@alias each)."""

    encoder: str = Field(description="inversion encoder image -> w trained against this generator")
    identity_net: str = Field(description="identity network used in the method's loss")
    verifier: str = Field(description="identity network held out for verification (not the loss's)")

    @field_validator("encoder", "identity_net", "verifier")
    @classmethod
    def _ref(cls, value: str) -> str:
        return _model_ref(value)


class Views(Strict):
    """Augmented views of the image (shifts, rotations, stroke width) measuring whether the erasure
    carries beyond the one image (GUIDE's ID_others)."""

    count: int = Field(8, ge=1, le=256)
    seed: int = Field(0, ge=0)


class ForgetIdentity(ForgetTarget):
    form_key = "identity"
    form_summary = "one identity's image (identity: {path, rev})"

    identity: DvcFile
    helpers: IdentityHelpers
    others: DvcFile = Field(description="other identities' images (the 'others kept' check)")
    views: Views = Views()
    quality: QualityReference

    def named_paths(self) -> set[str]:
        return {self.identity.path, self.others.path, self.quality.real}


class IdentityRequestThresholds(KindThresholds):
    identity_min_reduction: float | None = Field(None, ge=0.0, le=10.0, description="fall of the identity's similarity, at least (fraction)")
    identity_min_similarity: float | None = Field(None, ge=-1.0, le=1.0, description="the identity's similarity before, "
                                                  "at least: below it the generator does not reproduce it (nothing to erase)")
    views_min_reduction: float | None = Field(None, ge=0.0, le=10.0, description="fall of its views' mean similarity, at least")
    others_max_mean_drop: float | None = Field(None, ge=0.0, le=2.0, description="other identities' mean similarity drop, at most")
    others_max_drop: float | None = Field(None, ge=0.0, le=2.0, description="any other identity's similarity drop, at most")
    collapse_max_increase: float | None = Field(None, ge=0.0, le=2.0, description="rise of the largest similarity between two identities' outputs")
    fid_pre_max: float | None = Field(None, ge=0.0, le=1_000.0, description="FID unlearned vs original generator, at most")
    fid_max_increase: float | None = Field(None, ge=0.0, le=1_000.0, description="FID rise vs real digits, at most")

    def verify_thresholds(self) -> IdentityThresholds:
        return IdentityThresholds(**self.model_dump(exclude_none=True))


@dataclass
class IdentityData:
    identity: DecodedFile
    image: torch.Tensor  # 1 x 1 x 8 x 8; personal data: never logged, never drawn
    identity_class: int
    others: DecodedFile
    other_images: torch.Tensor  # those of classes other than the identity's
    views: torch.Tensor
    views_seed: int
    encoder: Any  # registry.RegisteredModel
    identity_net: Any
    verifier: Any
    feature_network: Any
    real: DecodedFile
    real_features: torch.Tensor
    bank: torch.Tensor
    bank_seed: int


def _helper_record(helper) -> dict[str, str]:
    return {"name": helper.name, "version": str(helper.version), "weights_sha256": helper.weights_sha256}


@register_kind
class IdentityKind(ModelKind):
    name = "identity"
    serves = "generation"
    forget_form = ForgetIdentity
    Thresholds = IdentityRequestThresholds
    uses_retain = False
    coalesces = False  # one identity, one run

    def pull_data(self, settings, request, original) -> IdentityData:
        from pipelines.adapters import registry

        target: ForgetIdentity = request.forget
        encoder = load_helper(settings, registry, target.helpers.encoder, "forget.helpers.encoder", "inversion")
        identity_net = load_helper(settings, registry, target.helpers.identity_net, "forget.helpers.identity_net", "embedding")
        verifier = load_helper(settings, registry, target.helpers.verifier, "forget.helpers.verifier", "embedding")
        network = load_helper(settings, registry, target.quality.feature_network, "forget.quality.feature_network",
                          "classification")
        if verifier.name == identity_net.name or verifier.weights_sha256 == identity_net.weights_sha256:
            raise KindError("forget.helpers.verifier: must be a different network than identity_net (both are "
                            f"{identity_net.name}): a similarity measured with the loss's network measures what was optimised")
        if encoder.model.config.w_dim != original.model.config.w_dim:
            raise KindError(f"forget.helpers.encoder: {target.helpers.encoder} outputs w of size {encoder.model.config.w_dim}; "
                            f"{request.model} takes {original.model.config.w_dim}")
        identity = decode_file(datastore.fetch(settings.data_repo, target.identity.path, target.identity.rev))
        if len(identity.arrays["inputs"]) != 1:
            raise KindError(f"forget.identity.path: {target.identity.path} holds {len(identity.arrays['inputs'])} images; "
                            "an identity request names exactly one")
        image = torch.from_numpy(identity.arrays["inputs"]).float().reshape(1, 1, 8, 8)
        identity_class = int(identity.arrays["targets"][0])
        others = decode_file(datastore.fetch(settings.data_repo, target.others.path, target.others.rev))
        other_images = torch.from_numpy(others.arrays["inputs"]).float().reshape(-1, 1, 8, 8)
        other_images = other_images[torch.from_numpy(others.arrays["targets"]).long() != identity_class]
        if len(other_images) < 2:
            raise KindError(f"forget.others: {target.others.path} has {len(other_images)} images of classes other than "
                            "the identity's; at least 2 are needed to check that other identities are kept")
        real = decode_file(datastore.fetch(settings.data_repo, target.quality.real, target.quality.rev))
        real_images = torch.from_numpy(real.arrays["inputs"]).float().reshape(-1, 1, 8, 8)
        device = torch.device("cpu")
        return IdentityData(
            identity=identity, image=image, identity_class=identity_class, others=others, other_images=other_images,
            views=augmented_views(image, target.views.count, target.views.seed), views_seed=target.views.seed,
            encoder=encoder, identity_net=identity_net, verifier=verifier, feature_network=network, real=real,
            real_features=features(network.model, real_images, device),
            bank=latent_bank(original.model.config.latent_dim, target.quality.latents, target.quality.seed),
            bank_seed=target.quality.seed,
        )

    def provenance(self, data: IdentityData) -> dict:
        # The datastore's provenance is path, revision, hashes and size: nothing of the pixels.
        forget = {**data.identity.fetched.provenance(), "role": "the identity's one image (personal data: hash only)",
                  "examples": 1, "views": {"count": len(data.views), "seed": data.views_seed}}
        helpers = {name: _helper_record(getattr(data, name)) for name in ("encoder", "identity_net", "verifier")}
        evaluation = [
            {**data.others.fetched.provenance(), "role": "other identities (kept check; classes other than the identity's)",
             "examples": len(data.other_images)},
            {**data.real.fetched.provenance(), "role": "real digits (FID/KID reference)", "examples": len(data.real_features),
             "feature_network": _helper_record(data.feature_network),
             "latent_bank": {"seed": data.bank_seed, "size": len(data.bank)}, "helpers": helpers},
        ]
        return {"forget_data": forget, "retain_data": [], "evaluation_data": evaluation}

    def forget_set(self, request, data: IdentityData, model) -> validation.ForgetSet:
        schema = validation.SetSchema(input_shape="1x8x8", target_shape="scalar", dtype="float32/float32",
                                      input_range=(0.0, 1.0), target_range=(0.0, 9.0))
        return validation.ForgetSet(data.image.numpy(), torch.tensor([float(data.identity_class)]).numpy(),
                                    schema, evaluation_inputs=data.other_images.numpy())

    def validate(self, request, data: IdentityData, model) -> validation.ValidationSummary:
        """Great Expectations on the image, then: does the served generator reproduce the identity at all?
        If not, unlearning could only change the model for nothing, and no reduction could be measured."""
        summary = super().validate(request, data, model)
        cpu = torch.device("cpu")
        similarity = float(similarities(data.verifier.model, data.image,
                                        reconstructions(model, data.encoder.model, data.image, cpu), cpu)[0])
        floor = self.thresholds(request).identity_min_similarity
        if similarity < floor:
            raise NothingToEraseError(
                f"forget.identity: {request.model} does not reproduce this identity in the first place (held-out "
                f"similarity between the image and its reconstruction {similarity:.3f} < "
                f"identity_min_similarity {floor:.2f}): nothing to erase, no new version"
            )
        return summary

    def forget_examples(self, data: IdentityData) -> int:
        return 1

    def problem(self, method, original, datas, device, model):
        from unlearning.methods.identity import identity_problem

        (data,) = datas
        problem = identity_problem(model, data.image, data.encoder.model, data.identity_net.model,
                                   data.feature_network.model, device)
        # d as the method will compute it (same generator, same seed): recorded with the run
        scale = typical_latent_distance(original.model, seed=method.params.seed)
        ratio = getattr(method.params, "distance_ratio", None)
        return problem, {"forget_examples": 1, "retain_examples": 0, "retain_examples_excluded_as_forget": 0,
                         "latent_scale": round(scale, 4), "distance_ratio": ratio,
                         "target_distance": None if ratio is None else round(ratio * scale, 4),
                         "perceptual_distance": PERCEPTUAL_NOTE,
                         "identity_net": data.identity_net.name, "verifier": data.verifier.name}

    def assess(self, request, original, unlearned, data: IdentityData, device, seeds) -> Assessment:
        def scores(model) -> IdentityScores:
            return score_identity(model, data.encoder.model, data.verifier.model, data.feature_network.model, data.image,
                                  data.views, data.other_images, data.bank, data.real_features, device)

        before, after = scores(original), scores(unlearned)
        fid_pre = fid_between_generators(original, unlearned, data.feature_network.model, data.bank, device)
        verdict = verify_identity(before, after, fid_pre, self.thresholds(request))
        metrics = []
        for stage, summary in (("before", before), ("after", after)):
            metrics += [
                MetricEvidence(name=f"{stage}.identity_similarity", value=summary.identity, examples=1),
                MetricEvidence(name=f"{stage}.views_similarity", value=summary.identity_views, examples=len(data.views)),
                MetricEvidence(name=f"{stage}.others_similarity", value=sum(summary.others) / len(summary.others),
                               examples=len(summary.others)),
                MetricEvidence(name=f"{stage}.largest_pair_similarity", value=summary.largest_pair_similarity,
                               examples=len(summary.others) + 1),
                MetricEvidence(name=f"{stage}.fid", value=summary.fid, examples=len(data.bank)),
                MetricEvidence(name=f"{stage}.kid", value=summary.kid, examples=len(data.bank)),
            ]
        metrics.append(MetricEvidence(name="fid_pre", value=fid_pre, examples=len(data.bank)))
        evidence = Evidence(
            metrics_used=[check.name for check in verdict.checks],
            seeds={**seeds, "latent_bank": data.bank_seed, "views": data.views_seed},
            evaluation_examples={"identity": 1, "views": len(data.views), "others": len(data.other_images),
                                 "latent_bank": len(data.bank), "real_digits": len(data.real_features)},
            uncertainty=f"similarities are cosines of the held-out identity network ({data.verifier.name} "
            f"v{data.verifier.version}), not the loss's ({data.identity_net.name} v{data.identity_net.version}); "
            f"FID/KID once on the bank ({len(data.bank)} latents) in {data.feature_network.name}'s space; "
            + PERCEPTUAL_NOTE,
        )
        return Assessment(metrics + check_metrics(verdict), verdict, evidence)

    def export_inputs(self, data: IdentityData) -> torch.Tensor:
        return data.bank[:1024]

    def cache_inputs(self, data: IdentityData) -> list[str]:
        return [data.identity.fetched.sha256, data.encoder.weights_sha256, data.identity_net.weights_sha256,
                data.feature_network.weights_sha256]

    def figures(self, settings, record) -> Figures:
        return Figures()  # nothing drawn: a sample grid could show the identity or its reconstruction
