"""`erasure model`: train the base models (the DVC stages), register them in MLflow, adopt a model trained elsewhere."""

from __future__ import annotations

import json
import re
from enum import Enum
from pathlib import Path

import typer

from pipelines.adapters.settings import PROJECT_ROOT, load_settings
from pipelines.cli.common import DEFAULT_PARAMS, console, enter_numerics

model_app = typer.Typer(help="Models: train and register the base models (DVC stages), or adopt your own.",
                        no_args_is_help=True)


class Family(str, Enum):
    """A base model and its params.yaml section."""

    restorer = "restorer"
    classifier = "classifier"
    generator = "generator"
    judge = "judge"
    feature_network = "feature-network"
    encoder = "encoder"
    identity_net = "identity-net"
    identity_verifier = "identity-verifier"


def _family(family: Family):
    """(trainer, params section) of a base model family."""
    from pipelines.flow import base_model

    return {
        Family.restorer: (base_model.train_base_model, "model"),
        Family.classifier: (base_model.train_base_classifier, "classifier"),
        Family.generator: (base_model.train_base_generator, "generator"),
        Family.judge: (base_model.train_digits_helper("judge"), "judge"),
        Family.feature_network: (base_model.train_digits_helper("feature_network"), "feature_network"),
        Family.encoder: (base_model.train_base_encoder, "encoder"),
        Family.identity_net: (base_model.train_identity_helper("identity_net"), "identity_net"),
        Family.identity_verifier: (base_model.train_identity_helper("identity_verifier"), "identity_verifier"),
    }[family]


@model_app.command("train")
def model_train(
    data: Path = typer.Option(PROJECT_ROOT / "data", help="data root"),
    out: Path = typer.Option(PROJECT_ROOT / "models" / "restorer", help="output directory"),
    params: Path = typer.Option(DEFAULT_PARAMS, help="params.yaml"),
    family: Family = typer.Option(Family.restorer, help="restorer (noise, rain, haze), classifier (digits), generator "
                                  "(digits GAN; needs the judge and feature network trained beside it), judge, feature-network"),
) -> None:
    """Train a base model (the DVC `train*` stages), always in reproducible numerics: the same bytes on any
    AVX2 CPU, so `dvc repro` on another machine finds the committed dvc.lock's md5s."""
    enter_numerics("reproducible")
    from pipelines.flow.base_model import load_params

    trainer, _ = _family(family)
    metrics = trainer(load_params(params), data, out)
    console.print_json(json.dumps(metrics))


@model_app.command("register")
def model_register(
    model_dir: Path = typer.Option(PROJECT_ROOT / "models" / "restorer", help="trained model directory"),
    params: Path = typer.Option(DEFAULT_PARAMS, help="params.yaml (model name and alias)"),
    family: Family = typer.Option(Family.restorer, help="which params section names it (see `train --family`)"),
    training_rev: str = typer.Option("HEAD", help="data repository revision the model was trained on (its lineage)"),
) -> None:
    """Register a trained base model in MLflow and set its alias, if not done already (idempotent), tagged
    with its training data: the data repository commit and the DVC files the train stage read there."""
    from pipelines.adapters.datastore import DataRevisionError
    from pipelines.erasure.lineage import at_revision
    from pipelines.flow.base_model import TRAINING_SETS, load_params, register_base_model

    loaded = load_params(params)
    model = getattr(loaded, _family(family)[1])
    settings = load_settings()
    try:
        lineage = at_revision(settings.data_repo, training_rev, TRAINING_SETS[family.value])
    except DataRevisionError as error:
        console.print(f"[yellow]no training lineage recorded[/] (requests must then name forget.rev): {error}")
        lineage = None
    differing = workspace_differences(settings.data_repo, lineage) if lineage else []
    if differing:
        # The train stage read the workspace: a lineage naming the commit would claim data it did not train on.
        console.print(f"[yellow]no training lineage recorded[/]: the workspace's {', '.join(differing)} differ from "
                      f"what DVC tracks at {training_rev}; commit the data (`dvc add`, `git commit`) and retrain")
        lineage = None
    version = register_base_model(settings, model_dir, model.name, model.alias, lineage)
    trained_on = f" (trained on data commit {lineage.commit[:12]})" if lineage else ""
    console.print(f"{model.name}@{model.alias} -> version {version}{trained_on}")


def workspace_differences(repo: Path, lineage) -> list[str]:
    """The lineage's files whose bytes in the data repository's workspace are not the ones DVC tracks at the
    lineage's commit (a file absent from the workspace is not checked)."""
    import hashlib

    differing = []
    for path, md5 in lineage.files.items():
        local = Path(repo) / path
        if local.is_file() and hashlib.md5(local.read_bytes()).hexdigest() != md5:
            differing.append(path)
    return differing


MODEL_URI = re.compile(r"^models:/(?P<name>[A-Za-z0-9][\w.-]*)/(?P<version>\d+)$")


@model_app.command("adopt")
def model_adopt(
    model_uri: str = typer.Argument(..., help="models:/NAME/VERSION, a version logged with mlflow.pytorch.log_model"),
    architecture: str = typer.Option(..., help="installed architecture entry (see `erasure plugins`) the weights load into"),
    task_kind: str = typer.Option(..., help="what the model is to the flow: restoration, classification, generation, ..."),
    config: str = typer.Option("{}", help="the architecture's config, as JSON (its typed config checks it)"),
    state_dict: str = typer.Option(None, help="artifact path, in the version's run, of a state dict logged with "
                                   "mlflow.pytorch.log_state_dict: read weights-only, trusting nothing"),
    trust_pickle: bool = typer.Option(False, "--trust-pickle", help="read the weights out of the pickled module "
                                      "(unpickling runs code named in the artifact: only for artifacts you produced)"),
    training_data: list[str] = typer.Option([], help="PATH@REV of a DVC-tracked set in the data repository the "
                                            "version was trained on (repeatable): its lineage"),
    alias: str = typer.Option("champion", help="alias to point at the adopted version: where requests start"),
) -> None:
    """Adopt a PyTorch model Erasure did not train: check its weights load into the declared architecture
    (refused naming the first tensor that does not fit), hash them, record the lineage, point the alias at it."""
    from pipelines.adapters import registry
    from pipelines.adapters.adoption import AdoptionError
    from pipelines.adapters.datastore import DataRevisionError
    from pipelines.kinds import UnknownKindError
    from pipelines.kinds.base import kind_for_task
    from unlearning.models import UnknownArchitectureError, architecture_named

    match = MODEL_URI.match(model_uri)
    if not match:
        console.print(f"[red]expected models:/NAME/VERSION, got {model_uri!r}[/]")
        raise typer.Exit(2)
    name, version = match["name"], match["version"]
    settings = load_settings()
    settings.export_environment()
    try:
        declared = architecture_named(architecture)
        if declared.task_kind != task_kind:
            raise AdoptionError(f"--task-kind {task_kind}: architecture {architecture!r} declares task kind {declared.task_kind!r}")
        kind = kind_for_task(declared.task_kind)  # before anything is tagged: a kind must serve it
        lineage = _lineage(settings, training_data)
        tags = lineage.tags() if lineage else {}
        adopted = registry.adopt_version(settings, name, version, architecture, json.loads(config), state_dict,
                                         trust_pickle, tags)
        registry.client(settings).set_registered_model_alias(name, alias, adopted.version)
    except (AdoptionError, UnknownArchitectureError, UnknownKindError, DataRevisionError, registry.ModelNotFoundError,
            registry.ModelIntegrityError, json.JSONDecodeError, TypeError, ValueError) as error:
        console.print(f"[red]not adopted[/]: {error}")
        raise typer.Exit(2) from None
    trained_on = f", trained on data commit {lineage.commit[:12]}" if lineage else ", no training lineage"
    console.print(f"adopted {name} version {adopted.version} as {architecture} ({kind.name} kind), weights sha256 "
                  f"{adopted.weights_sha256[:16]}...{trained_on}; {name}@{alias} -> version {adopted.version}")


def _lineage(settings, training_data: list[str]):
    """The lineage named by --training-data PATH@REV options (one revision for all), or None."""
    from pipelines.erasure.lineage import at_revision

    if not training_data:
        return None
    paths, revisions = zip(*(item.rsplit("@", 1) if "@" in item else (item, "HEAD") for item in training_data))
    if len(set(revisions)) != 1:
        raise ValueError(f"--training-data: one revision for all sets, got {sorted(set(revisions))}")
    return at_revision(settings.data_repo, revisions[0], list(paths))
