"""Generation (the digits GAN): the deployed generator must stop producing a feature (Adapt-then-Unlearn).

The forget target is a feature, not a data file: "samples that the judge `digits-judge@champion` calls
class 7". No training data is needed and none is read. The flow generates, from the deployed generator
with a recorded seed, the negatives (samples the judge calls the class) and the positives (samples it
does not); a requester may supply the negatives as a DVC path instead.

Verification runs both generators on one fixed, seeded latent bank: the share of samples the judge calls
the class before and after (the unlearning rate), and FID/KID against real digits of the kept classes in
a *feature network's* space, a different registered model than the judge, so the quality metric is never
computed with the network that selected the samples.
"""

from __future__ import annotations

import hashlib
import re
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
    binomial_stderr,
    check_metrics,
    register_kind,
)
from pipelines.kinds.files import DecodedFile, decode_file
from unlearning.data.pairs import PairSet
from unlearning.generation_metrics import features, generate_images, latent_bank, predicted_classes, score_generator
from unlearning.verify import GenerationScores, GenerationThresholds, verify_generation

_MODEL_REF = re.compile(r"^[A-Za-z0-9][\w.-]*@[A-Za-z][\w-]*$")
SAMPLE_BATCH = 2048
MAX_SAMPLE_DRAWS = 40  # at most 40 x 2048 samples drawn looking for negatives


def _model_ref(value: str) -> str:
    if not _MODEL_REF.match(value):
        raise ValueError(f"expected 'name@alias' (e.g. digits-judge@champion), got {value[:80]!r}")
    return value


class Feature(Strict):
    judge: str = Field(description="registered classifier that says which class a sample shows, name@alias")
    class_: int = Field(alias="class", ge=0, le=999, description="the class the generator must stop producing")

    @field_validator("judge")
    @classmethod
    def _judge_ref(cls, value: str) -> str:
        return _model_ref(value)


class Samples(Strict):
    """How many samples the flow generates for the method (the paper's code: a few hundred negatives,
    several thousand positives), from which seed."""

    negatives: int = Field(300, ge=16, le=5_000)
    positives: int = Field(3_000, ge=64, le=50_000)
    seed: int = Field(0, ge=0)


class SuppliedNegatives(Strict):
    path: str = Field(description="DVC-tracked set file of negatives (inputs N x 64 or N x 1 x 8 x 8 in [0, 1])")
    rev: str = Field(description="git revision of the data repository the path is read at")


class QualityReference(Strict):
    """What quality is measured against: real digits (a held-out split, not training data) in a feature
    network's space, on a fixed bank of latents."""

    feature_network: str = Field(description="registered network whose penultimate layer is the FID/KID space")
    real: str = Field(description="DVC path of real digits (e.g. data/digits/test.safetensors); the kept classes are used")
    rev: str = Field("HEAD", description="git revision the real digits are read at")
    latents: int = Field(4_096, ge=256, le=100_000, description="size of the latent bank both generators are scored on")
    seed: int = Field(1, ge=0, description="the latent bank's seed")

    @field_validator("feature_network")
    @classmethod
    def _network_ref(cls, value: str) -> str:
        return _model_ref(value)


class ForgetFeature(ForgetTarget):
    form_key = "feature"
    form_summary = "a generator's feature (feature: {judge, class})"

    feature: Feature
    samples: Samples = Samples()
    negatives: SuppliedNegatives | None = None
    quality: QualityReference

    def named_paths(self) -> set[str]:
        return {self.quality.real} | ({self.negatives.path} if self.negatives else set())


class GenerationRequestThresholds(KindThresholds):
    forget_max_share: float | None = Field(None, ge=0.0, le=1.0, description="share of samples still showing the class, at most")
    forget_min_reduction: float | None = Field(None, ge=0.0, le=1.0, description="relative fall of that share, at least")
    fid_max_increase: float | None = Field(None, ge=0.0, le=1_000.0, description="FID rise vs real kept-class digits, at most")
    kept_class_min_share: float | None = Field(None, ge=0.0, le=1.0, description="each kept class keeps this fraction of its share")

    def verify_thresholds(self) -> GenerationThresholds:
        return GenerationThresholds(**self.model_dump(exclude_none=True))


@dataclass
class GenerationData:
    """A generation request's data: the helper networks, generated (or supplied) samples, the quality reference."""

    judge: Any  # registry.RegisteredModel
    feature_network: Any
    forget_class: int
    negatives: PairSet
    positives: PairSet
    negatives_source: dict[str, Any]  # generated (seed, draws) or supplied (DVC provenance)
    real: DecodedFile
    kept_real_features: torch.Tensor
    bank: torch.Tensor
    bank_seed: int
    forgotten_real_examples: int


def _tensor_sha256(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


@register_kind
class GenerationKind(ModelKind):
    name = "generation"
    forget_form = ForgetFeature
    Thresholds = GenerationRequestThresholds
    uses_retain = False
    coalesces = False  # each request generates its own samples from its own feature

    def pull_data(self, settings, request, original) -> GenerationData:
        from pipelines.adapters import registry

        target: ForgetFeature = request.forget
        judge = load_helper(settings, registry, target.feature.judge, "forget.feature.judge")
        network = load_helper(settings, registry, target.quality.feature_network, "forget.quality.feature_network")
        if network.weights_sha256 == judge.weights_sha256 or network.name == judge.name:
            raise KindError(
                "forget.quality.feature_network: must be a different network than the judge that selects the samples "
                f"(both are {judge.name}): a quality metric computed with the selecting judge measures what was optimised"
            )
        classes = judge.model.config.classes
        if target.feature.class_ >= classes:
            raise KindError(f"forget.feature.class: {target.feature.class_} is not a class of {target.feature.judge} "
                            f"(classes 0..{classes - 1})")
        device = torch.device("cpu")
        negatives, positives, source = _samples(original.model, judge.model, target, device)
        if target.negatives is not None:
            supplied = decode_file(datastore.fetch(settings.data_repo, target.negatives.path, target.negatives.rev))
            images = torch.from_numpy(supplied.arrays["inputs"]).float().reshape(-1, 1, 8, 8)
            negatives = PairSet("negatives", images, torch.from_numpy(supplied.arrays["targets"]).float())
            source = {"source": "supplied", **supplied.fetched.provenance()}
        real = decode_file(datastore.fetch(settings.data_repo, target.quality.real, target.quality.rev))
        real_images = torch.from_numpy(real.arrays["inputs"]).float().reshape(-1, 1, 8, 8)
        real_labels = torch.from_numpy(real.arrays["targets"]).long()
        kept = real_labels != target.feature.class_
        bank = latent_bank(original.model.config.latent_dim, target.quality.latents, target.quality.seed)
        return GenerationData(
            judge=judge, feature_network=network, forget_class=target.feature.class_, negatives=negatives,
            positives=positives, negatives_source=source, real=real,
            kept_real_features=features(network.model, real_images[kept], device), bank=bank,
            bank_seed=target.quality.seed, forgotten_real_examples=int((~kept).sum()),
        )

    def provenance(self, data: GenerationData) -> dict:
        helpers = {
            "judge": {"name": data.judge.name, "version": data.judge.version, "weights_sha256": data.judge.weights_sha256},
            "feature_network": {"name": data.feature_network.name, "version": data.feature_network.version,
                                "weights_sha256": data.feature_network.weights_sha256},
        }
        forget = {"feature": {"class": data.forget_class, **helpers["judge"]}, **data.negatives_source,
                  "examples": len(data.negatives), "sha256": _tensor_sha256(data.negatives.inputs)}
        evaluation = {**data.real.fetched.provenance(), "role": "real digits of the kept classes (FID/KID reference)",
                      "kept_examples": len(data.kept_real_features), "feature_network": helpers["feature_network"],
                      "latent_bank": {"seed": data.bank_seed, "size": len(data.bank)}}
        positives = {"source": "generated", "examples": len(data.positives), "sha256": _tensor_sha256(data.positives.inputs)}
        return {"forget_data": forget, "retain_data": [positives], "evaluation_data": [evaluation]}

    def forget_set(self, request, data: GenerationData, model) -> validation.ForgetSet:
        inputs = data.negatives.inputs.numpy()
        targets = data.negatives.targets.numpy()
        schema = validation.SetSchema(
            input_shape="1x8x8", target_shape="scalar", dtype="float32/float32", input_range=(0.0, 1.0),
            target_range=(float(data.forget_class), float(data.forget_class)),
        )
        real_inputs = data.real.arrays["inputs"].reshape(-1, 1, 8, 8).astype("float32")
        return validation.ForgetSet(inputs, targets, schema, evaluation_inputs=real_inputs)

    def forget_examples(self, data: GenerationData) -> int:
        return len(data.negatives)

    def problem(self, method, original, datas, device, model):
        from unlearning.methods import UnlearningProblem

        (data,) = datas
        problem = UnlearningProblem(model=model, forget=data.negatives, retain=data.positives, device=device,
                                    task=self.task(model))
        return problem, {"forget_examples": len(data.negatives), "retain_examples": len(data.positives),
                         "retain_examples_excluded_as_forget": 0}

    def assess(self, request, original, unlearned, data: GenerationData, device, seeds) -> Assessment:
        def scores(model) -> GenerationScores:
            return score_generator(model, data.judge.model, data.feature_network.model, data.bank,
                                   data.kept_real_features, data.forget_class, device)

        before, after = scores(original), scores(unlearned)
        verdict = verify_generation(before, after, self.thresholds(request))
        bank = len(data.bank)
        metrics = []
        for stage, summary in (("before", before), ("after", after)):
            metrics += [
                MetricEvidence(name=f"{stage}.forget_share", value=summary.forget_share,
                               stderr=binomial_stderr(summary.forget_share, bank), examples=bank),
                MetricEvidence(name=f"{stage}.fid", value=summary.fid, examples=bank),
                MetricEvidence(name=f"{stage}.kid", value=summary.kid, examples=bank),
            ]
            metrics += [MetricEvidence(name=f"{stage}.class_share.{label}", value=share, examples=bank)
                        for label, share in enumerate(summary.class_shares)]
        evidence = Evidence(
            metrics_used=[check.name for check in verdict.checks],
            seeds={**seeds, "latent_bank": data.bank_seed, **({"samples": data.negatives_source["seed"]}
                                                                 if "seed" in data.negatives_source else {})},
            evaluation_examples={"latent_bank": bank, "kept_real_digits": len(data.kept_real_features),
                                 "negatives": len(data.negatives), "positives": len(data.positives)},
            uncertainty="stderr of a share = sqrt(p (1 - p) / bank size); FID/KID are computed once on the bank "
            f"({bank} samples) against {len(data.kept_real_features)} real kept-class digits, in the feature network's "
            f"space ({data.feature_network.name} v{data.feature_network.version}), never the judge's "
            f"({data.judge.name} v{data.judge.version})",
        )
        return Assessment(metrics + check_metrics(verdict), verdict, evidence)

    def export_inputs(self, data: GenerationData) -> torch.Tensor:
        return data.bank[:1024]

    def cache_inputs(self, data: GenerationData) -> list[str]:
        return [_tensor_sha256(data.negatives.inputs), _tensor_sha256(data.positives.inputs), data.judge.weights_sha256]

    def figures(self, settings, record) -> Figures:
        from pipelines.audit import figures

        return Figures(metrics=figures.class_share_chart(record),
                       samples=figures.generator_grid(settings, record) if record.metrics else None)


def load_helper(settings, registry, reference: str, field: str, task_kind: str = "classification"):
    """A registered helper network a generator request names (`name@alias`), refused unless it is `task_kind`."""
    name, alias = reference.split("@")
    try:
        helper = registry.load_by_alias(settings, name, alias)
    except registry.ModelNotFoundError as error:
        raise KindError(f"{field}: {error}") from error
    if getattr(helper.model, "task_kind", None) != task_kind:
        raise KindError(f"{field}: {reference} is a {getattr(helper.model, 'task_kind', '?')} model, not a {task_kind} model")
    return helper



def _samples(generator, judge, target: ForgetFeature, device) -> tuple[PairSet, PairSet, dict[str, Any]]:
    """Draw from the deployed generator until there are enough negatives and positives (seeded). With
    supplied negatives only positives are wanted (the negatives returned are then empty)."""
    wanted_negatives = target.samples.negatives if target.negatives is None else 0
    images, labels, drawn = [], [], 0
    for draw in range(MAX_SAMPLE_DRAWS):
        latents = latent_bank(generator.config.latent_dim, SAMPLE_BATCH, target.samples.seed * 1_000 + draw)
        images.append(generate_images(generator, latents, device))
        labels.append(predicted_classes(judge, images[-1], device))
        drawn += SAMPLE_BATCH
        found = int(sum((batch == target.feature.class_).sum() for batch in labels))
        if found >= wanted_negatives and drawn - found >= target.samples.positives:
            break
    if found < wanted_negatives:
        raise KindError(
            f"forget.feature: the generator produced {found} samples that {target.feature.judge} calls class "
            f"{target.feature.class_} in {drawn} draws, fewer than samples.negatives={wanted_negatives}: "
            "it hardly produces the feature (nothing to forget), or lower samples.negatives"
        )
    images, labels = torch.cat(images), torch.cat(labels)
    chosen = labels == target.feature.class_
    negatives = PairSet("negatives", images[chosen][:wanted_negatives], labels[chosen][:wanted_negatives].float())
    keep = target.samples.positives
    positives = PairSet("positives", images[~chosen][:keep], labels[~chosen][:keep].float())
    return negatives, positives, {"source": "generated", "seed": target.samples.seed, "samples_drawn": drawn}
