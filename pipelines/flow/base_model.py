"""The base models that deletion requests start from, trained by the DVC `train*` stages, then registered:
the all-in-one restorer (`model` in params.yaml), the digits classifier (`classifier`), and the digits
generator (`generator`) with its two helper networks, the judge (`judge`) and the feature network
(`feature_network`), and what identity unlearning (GUIDE) needs beside it: the inversion encoder
(`encoder`, trained against the registered generator) and two identity networks (`identity_net` used in
the loss, `identity_verifier` held out for verification)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import BaseModel, ConfigDict

from pipelines.adapters import registry
from pipelines.adapters.settings import Settings
from unlearning.data.degradations import DEGRADATIONS
from unlearning.data.digits import CLASSES, DigitsDataConfig, build_digits_sets, class_set_path
from unlearning.data.digits import set_path as digits_set_path
from unlearning.data.identities import build_identity_sets
from unlearning.data.pairs import PairSet, decode_arrays
from unlearning.data.restoration import RestorationDataConfig, build_restoration_sets, set_path
from unlearning.device import best_device
from unlearning.metrics import accuracy, score_restoration
from unlearning.models import build_model
from unlearning.tasks import Classification
from unlearning.train import TrainConfig, train_model, train_restorer


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisteredModelParams(_Section):
    """Where a base model is registered (`name@alias`) and what it is built as."""

    name: str
    alias: str = "champion"
    architecture: str


class ModelParams(RegisteredModelParams):
    name: str = "restorer"
    architecture: str = "restorer-unet"
    width: int = 16
    levels: int = 2
    prompts: int = 0


class ClassifierParams(RegisteredModelParams):
    name: str = "digits-classifier"
    architecture: str = "digits-mlp"
    hidden: int = 256
    depth: int = 2
    train: dict[str, Any] = {}


class NetworkParams(RegisteredModelParams):
    """A model built from its architecture's config dict and trained with `train` (generator and helpers)."""

    config: dict[str, Any] = {}
    train: dict[str, Any] = {}


class Params(_Section):
    """params.yaml, typed."""

    data: dict[str, Any]
    model: ModelParams
    train: dict[str, Any]
    digits: dict[str, Any] = {}
    classifier: ClassifierParams = ClassifierParams()
    generator: NetworkParams = NetworkParams(name="digits-generator", architecture="digits-gan")
    judge: NetworkParams = NetworkParams(name="digits-judge", architecture="digits-judge-cnn")
    feature_network: NetworkParams = NetworkParams(name="digits-feature-net", architecture="digits-feature-net")
    encoder: NetworkParams = NetworkParams(name="digits-gan-encoder", architecture="digits-gan-encoder")
    identity_net: NetworkParams = NetworkParams(name="digits-identity-net", architecture="digits-identity-net")
    identity_verifier: NetworkParams = NetworkParams(name="digits-identity-verifier", architecture="digits-identity-net")

    @property
    def digits_config(self) -> DigitsDataConfig:
        return DigitsDataConfig(**self.digits)

    @property
    def data_config(self) -> RestorationDataConfig:
        return RestorationDataConfig(**self.data)

    @property
    def train_config(self) -> TrainConfig:
        return TrainConfig(**self.train)


def load_params(path: Path) -> Params:
    return Params.model_validate(yaml.safe_load(Path(path).read_text()))


def data_files(params: Params) -> dict[str, bytes]:
    """Every set file under data/ (what data.dvc tracks), by relative path; same params, same bytes."""
    return (build_restoration_sets(params.data_config) | build_digits_sets(params.digits_config)
            | build_identity_sets(params.digits_config))


def _read_set(data_root: Path, split: str, degradation: str) -> PairSet:
    return _read_file(data_root / set_path(split, degradation), degradation)


def _read_file(path: Path, name: str) -> PairSet:
    return PairSet.from_arrays(name, decode_arrays(path.read_bytes(), str(path))[0])


def train_base_model(params: Params, data_root: Path, out_dir: Path, show_progress: bool = True) -> dict[str, float]:
    """Train on every degradation, write weights + architecture + held-out metrics to `out_dir`."""
    device = best_device()
    torch.manual_seed(params.train_config.seed)  # initial weights are part of the experiment
    config = {"width": params.model.width, "levels": params.model.levels, "prompts": params.model.prompts}
    model = build_model(params.model.architecture, config)
    # A set an erasure emptied (every example forgotten, e.g. a whole degradation) is not trained on.
    train_sets = [s for s in (_read_set(data_root, "train", name) for name in DEGRADATIONS) if len(s)]
    train_restorer(model, train_sets, params.train_config, device, show_progress=show_progress)
    registry.write_model_files(model.cpu(), params.model.architecture, out_dir)
    metrics = {}
    for name in DEGRADATIONS:
        scores = score_restoration(model, _read_set(data_root, "eval", name), device)
        metrics |= {f"{name}.psnr": scores.psnr, f"{name}.ssim": scores.ssim, f"{name}.input_psnr": scores.input_psnr}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    return metrics


def train_base_classifier(params: Params, data_root: Path, out_dir: Path, show_progress: bool = True) -> dict[str, float]:
    """Train the digits classifier on the train split; write weights, architecture and test accuracies."""
    device, config = best_device(), params.classifier
    train_config = TrainConfig(**config.train)
    torch.manual_seed(train_config.seed)
    model = build_model(config.architecture, {"hidden": config.hidden, "depth": config.depth, "classes": CLASSES})
    train_set = _read_file(data_root / digits_set_path("train"), "train")
    train_model(model, train_set, Classification(CLASSES), train_config, device, show_progress=show_progress)
    registry.write_model_files(model.cpu(), config.architecture, out_dir)
    metrics = {"test.accuracy": accuracy(model, _read_file(data_root / digits_set_path("test"), "test"), device)}
    for label in range(CLASSES):
        metrics[f"test.class-{label}.accuracy"] = accuracy(model, _read_file(data_root / class_set_path("test", label), "c"), device)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    return metrics


def train_digits_helper(section: str):
    """A trainer for the judge or the feature network: a digits CNN on the train split, test accuracy as metrics."""

    def train(params: Params, data_root: Path, out_dir: Path, show_progress: bool = True) -> dict[str, float]:
        from unlearning.gan_training import train_digits_classifier_cnn

        device, config = best_device(), getattr(params, section)
        train_config = TrainConfig(**config.train)
        torch.manual_seed(train_config.seed)
        model = build_model(config.architecture, {**config.config, "classes": CLASSES})
        train_set = _read_file(data_root / digits_set_path("train"), "train")
        train_digits_classifier_cnn(model, train_set.inputs, train_set.targets.long(), train_config, device, show_progress)
        registry.write_model_files(model.cpu(), config.architecture, out_dir)
        metrics = {"test.accuracy": accuracy(model, _read_file(data_root / digits_set_path("test"), "test"), device)}
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        return metrics

    return train


def train_base_generator(params: Params, data_root: Path, out_dir: Path, show_progress: bool = True,
                         helpers: Path | None = None) -> dict[str, float]:
    """Train the digits GAN on the train split (every class); metrics: class shares by the judge and FID/KID
    against the test split in the feature network's space, on a fixed latent bank."""
    from unlearning.gan_training import GanTrainConfig, digits_images, train_gan
    from unlearning.generation_metrics import class_shares, features, frechet_distance, generate_images, latent_bank

    device, config = best_device(), params.generator
    train_config = GanTrainConfig(**config.train)
    torch.manual_seed(train_config.seed)
    model = build_model(config.architecture, config.config)
    train_set = _read_file(data_root / digits_set_path("train"), "train")
    train_gan(model, digits_images(train_set.inputs), train_config, device, show_progress=show_progress)
    registry.write_model_files(model.cpu(), config.architecture, out_dir)
    helpers = helpers or out_dir.parent
    judge, _ = registry.read_model_files(helpers / params.judge.name)
    network, _ = registry.read_model_files(helpers / params.feature_network.name)
    images = generate_images(model, latent_bank(model.config.latent_dim, 4096, seed=1), device)
    test = _read_file(data_root / digits_set_path("test"), "test")
    shares = class_shares(judge, images, device)
    metrics = {f"class_share.{label}": float(share) for label, share in enumerate(shares)}
    metrics["fid.test"] = frechet_distance(features(network, images, device), features(network, digits_images(test.inputs), device))
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    return metrics


def train_identity_helper(section: str):
    """A trainer for an identity network (instance discrimination on the train split); metrics: how much
    closer augmented views of a test digit are to it than other test digits are (cosines)."""

    def train(params: Params, data_root: Path, out_dir: Path, show_progress: bool = True) -> dict[str, float]:
        from unlearning.identity import IdentityTrainConfig, augment, identity_similarity, train_identity_net

        device, config = best_device(), getattr(params, section)
        train_config = IdentityTrainConfig(**config.train)
        torch.manual_seed(train_config.seed)
        model = build_model(config.architecture, config.config)
        train_set = _read_file(data_root / digits_set_path("train"), "train")
        train_identity_net(model, train_set.inputs, train_config, device, show_progress)
        registry.write_model_files(model.cpu(), config.architecture, out_dir)
        test = _read_file(data_root / digits_set_path("test"), "test").inputs.reshape(-1, 1, 8, 8)
        views = augment(test, torch.Generator().manual_seed(0))
        with torch.no_grad():
            metrics = {"test.view_similarity": float(identity_similarity(model, test, views).mean()),
                       "test.other_similarity": float(identity_similarity(model, test, test.roll(1, dims=0)).mean())}
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        return metrics

    return train


def train_base_encoder(params: Params, data_root: Path, out_dir: Path, show_progress: bool = True,
                       generator_dir: Path | None = None) -> dict[str, float]:
    """Train the inversion encoder against the trained generator (models/digits-generator, the registered
    base version); metrics: pixel MSE of G(E(x)) on the test split, which neither trained on."""
    from unlearning.identity import EncoderTrainConfig, train_encoder

    device, config = best_device(), params.encoder
    train_config = EncoderTrainConfig(**config.train)
    generator, _ = registry.read_model_files(generator_dir or out_dir.parent / params.generator.name)
    torch.manual_seed(train_config.seed)
    model = build_model(config.architecture, {**config.config, "w_dim": generator.config.w_dim})
    train_set = _read_file(data_root / digits_set_path("train"), "train")
    train_encoder(model, generator, train_set.inputs, train_config, device, show_progress)
    registry.write_model_files(model.cpu(), config.architecture, out_dir)
    test = _read_file(data_root / digits_set_path("test"), "test").inputs.reshape(-1, 1, 8, 8)
    with torch.no_grad():
        error = (generator.cpu().synthesis(model(test)) - test).pow(2).mean()
    metrics = {"test.reconstruction_mse": float(error)}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    return metrics


# What each family's DVC `train*` stage reads: a base version's training data (its lineage).
TRAINING_SETS = {
    "restorer": [f"data/{set_path('train', name)}" for name in DEGRADATIONS],
    "classifier": [f"data/{digits_set_path('train')}"],
    "generator": [f"data/{digits_set_path('train')}"],
    "judge": [f"data/{digits_set_path('train')}"],
    "feature-network": [f"data/{digits_set_path('train')}"],
    "encoder": [f"data/{digits_set_path('train')}"],
    "identity-net": [f"data/{digits_set_path('train')}"],
    "identity-verifier": [f"data/{digits_set_path('train')}"],
}


def register_base_model(settings: Settings, model_dir: Path, name: str, alias: str, lineage=None) -> str:
    """Register the trained model and point `alias` at it, unless the registry already has it.

    Idempotent: re-running finds the version by its weights hash; an alias that already points
    somewhere (say, at an unlearned version) is left alone. `lineage` (pipelines/erasure/lineage.py), when given,
    is tagged on a new version: the data it was trained on.
    """
    digest = registry.sha256_file(model_dir / registry.WEIGHTS_FILE)
    mlflow_client = registry.client(settings)
    existing = mlflow_client.search_model_versions(f"name = '{name}'") if _exists(mlflow_client, name) else []
    version = next((v.version for v in existing if v.tags.get(registry.TAG_WEIGHTS) == digest), None)
    if version is None:
        model, architecture = registry.read_model_files(model_dir)
        experiment_id = registry.ensure_experiment(settings, settings.training_experiment)
        run = mlflow_client.create_run(experiment_id, run_name=f"train-{name}")
        metrics = json.loads((model_dir / "metrics.json").read_text())
        for key, value in metrics.items():
            mlflow_client.log_metric(run.info.run_id, key, value)
        tags = {registry.TAG_STATUS: "base", **(lineage.tags() if lineage is not None else {})}
        version, _ = registry.log_and_register(settings, run.info.run_id, name, model, architecture["architecture"], tags)
        mlflow_client.set_terminated(run.info.run_id)
    if registry.alias_version(settings, name, alias) is None:
        mlflow_client.set_registered_model_alias(name, alias, str(version))
        registry.tag_version(settings, name, str(version), {registry.TAG_STATUS: "promoted"})
    return str(version)


def _exists(mlflow_client, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.get_registered_model(name)
        return True
    except MlflowException:
        return False
