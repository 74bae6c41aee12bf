"""MLflow Model Registry: load a model by alias, register a candidate, promote it, tag its lineage.

A model version carries `erasure.weights_sha256`; loading re-hashes the downloaded weights against
it, so a swapped artifact is caught before anything is unlearned from it. A version is Erasure's own
pyfunc (safetensors + architecture JSON) or an adopted model's pytorch flavor (adoption.py says how it is
read). One file (~440 lines) on purpose: every call Erasure makes to the registry, and its refusals, in one place.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import torch
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from safetensors.torch import load_file, save, save_file
from torch import nn

from pipelines.adapters import adoption
from pipelines.adapters.settings import PROJECT_ROOT, Settings
from unlearning.models import build_model, describe

WEIGHTS_FILE = "weights.safetensors"
ARCHITECTURE_FILE = "architecture.json"
SERVING_CODE = Path(__file__).with_name("serving_model.py")
TAG_WEIGHTS = "erasure.weights_sha256"
TAG_STATUS = "erasure.status"
TAG_PARENT = "erasure.parent_version"
TAG_REQUEST = "erasure.request_id"
TAG_CHILD = "erasure.superseded_by"
TAG_PROMOTED_AT = "erasure.promoted_at"


class ModelNotFoundError(LookupError):
    """The registered model, alias or version does not exist."""


class ModelIntegrityError(ValueError):
    """The model's weights do not match their registry record, or contain NaN/inf."""


class RegistryAccessError(PermissionError):
    """MLflow refused the call: no or wrong credentials (401), or a user without the permission (403)."""


# MLflow's error codes for the auth app's refusals, with the HTTP status the server sent.
ACCESS_ERROR_CODES = {"UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403}


def access_error(error: Exception, action: str) -> RegistryAccessError | None:
    """A clear RegistryAccessError for an MLflow auth refusal, or None when `error` is something else."""
    code = getattr(error, "error_code", None)
    if code not in ACCESS_ERROR_CODES:
        return None
    user = os.environ.get("MLFLOW_TRACKING_USERNAME") or "no user (MLFLOW_TRACKING_USERNAME is unset)"
    remedy = (
        "set MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD"
        if code == "UNAUTHENTICATED"
        else "use a user with EDIT or MANAGE permission on it (the pipeline's admin), not a read-only one"
    )
    return RegistryAccessError(
        f"registry: MLflow at {mlflow.get_tracking_uri()} refused to {action} for {user}: "
        f"HTTP {ACCESS_ERROR_CODES[code]} {code}; {remedy}"
    )


def _explain_refusals(action: str):
    """Decorator: turn MLflow's 401/403 inside the function into a RegistryAccessError naming `action`."""

    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except MlflowException as error:
                refusal = access_error(error, action)
                if refusal is None:
                    raise
                raise refusal from error

        return wrapper

    return decorate


@dataclass
class RegisteredModel:
    name: str
    version: str
    run_id: str | None
    architecture: dict[str, Any]
    weights_sha256: str
    model: nn.Module
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def lineage(self):
        """The training data this version was trained on (pipelines/erasure/lineage.py), or None if unrecorded."""
        from pipelines.erasure.lineage import from_tags

        return from_tags(self.tags)


def client(settings: Settings) -> MlflowClient:
    mlflow.set_tracking_uri(settings.tracking_uri)
    return MlflowClient(settings.tracking_uri)


@_explain_refusals("read or create an experiment")
def ensure_experiment(settings: Settings, name: str) -> str:
    """The experiment's id, created with its artifacts under ERASURE_HOME when the store is local."""
    mlflow_client = client(settings)
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    local_store = settings.tracking_uri.startswith("sqlite:")
    location = (settings.artifact_root / name).as_uri() if local_store else None
    return mlflow_client.create_experiment(name, artifact_location=location)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# Models loaded by alias during one request (its helper networks): the record keeps which version each alias
# pointed at, and a re-execution (pipelines/audit/reproduce.py) pins the aliases to those versions.
_LOADED: ContextVar[list[dict[str, str]] | None] = ContextVar("loaded_by_alias", default=None)
_PINNED: ContextVar[dict[str, str] | None] = ContextVar("pinned_aliases", default=None)


@contextmanager
def recording_alias_loads() -> Iterator[list[dict[str, str]]]:
    """Within this block, every `load_by_alias` appends {reference, name, version, weights_sha256}."""
    loaded: list[dict[str, str]] = []
    token = _LOADED.set(loaded)
    try:
        yield loaded
    finally:
        _LOADED.reset(token)


@contextmanager
def pinned_aliases(versions: dict[str, str]) -> Iterator[None]:
    """Within this block, `load_by_alias` of a 'name@alias' in `versions` loads that version, wherever the
    alias points now."""
    token = _PINNED.set(dict(versions))
    try:
        yield
    finally:
        _PINNED.reset(token)


@_explain_refusals("download a model")
def load_by_alias(settings: Settings, name: str, alias: str) -> RegisteredModel:
    """Download and rebuild `name@alias`, checking the weights against the version's recorded hash."""
    reference = f"{name}@{alias}"
    pinned = (_PINNED.get() or {}).get(reference)
    version = _version(settings, name, pinned) if pinned else _version_by_alias(settings, name, alias)
    loaded = _load_version(settings, name, version)
    if _LOADED.get() is not None:
        _LOADED.get().append({"reference": reference, "name": name, "version": loaded.version,
                              "weights_sha256": loaded.weights_sha256})
    return loaded


@_explain_refusals("download a model")
def load_version(settings: Settings, name: str, version: str) -> RegisteredModel:
    """Download and rebuild version `version` of `name`, checking its weights against their recorded hash."""
    return _load_version(settings, name, _version(settings, name, version))


def _version(settings: Settings, name: str, version: str):
    try:
        return client(settings).get_model_version(name, str(version))
    except MlflowException as error:
        if access_error(error, "read a model version") is not None:
            raise
        raise ModelNotFoundError(f"model: no version {version} of registered model '{name}' ({error.error_code})") from error


def weights_sha256(model: nn.Module) -> str:
    """The sha256 a version of `model` is registered under: that of its safetensors file (`write_model_files`)."""
    return hashlib.sha256(save({key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()})).hexdigest()


@_explain_refusals("download a model")
def load_request_base(settings: Settings, name: str, alias: str, request_id: str) -> RegisteredModel:
    """The version `request_id` starts from: `name@alias`, or, when the alias already points at the version
    this request produced (an attempt killed after promoting, before its audit record), that version's parent.
    """
    version = _version_by_alias(settings, name, alias)
    parent = version.tags.get(TAG_PARENT)
    if version.tags.get(TAG_REQUEST) == request_id and parent:
        version = client(settings).get_model_version(name, parent)
    return _load_version(settings, name, version)


def _version_by_alias(settings: Settings, name: str, alias: str):
    try:
        return client(settings).get_model_version_by_alias(name, alias)
    except MlflowException as error:
        if access_error(error, "read a model alias") is not None:
            raise  # a refusal is not a missing model; the decorator explains it
        raise ModelNotFoundError(f"model: no registered model version for '{name}@{alias}' ({error.error_code})") from error


def _load_version(settings: Settings, name: str, version) -> RegisteredModel:
    client(settings)  # sets the tracking URI the artifact download uses
    if adoption.is_adopted(version.tags):
        return _load_adopted_version(settings, name, version)
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version.version}", dst_path=scratch))
        weights_path = local / "artifacts" / WEIGHTS_FILE
        actual = sha256_file(weights_path)
        _refuse_changed_weights(name, version, actual)
        model, architecture = read_model_files(local / "artifacts")
    _refuse_non_finite(model, name, version.version)
    return RegisteredModel(name, str(version.version), version.run_id, architecture, actual, model.eval(), dict(version.tags))


def _refuse_changed_weights(name: str, version, actual: str) -> None:
    recorded = version.tags.get(TAG_WEIGHTS)
    if recorded != actual:
        raise ModelIntegrityError(
            f"model: weights of {name} version {version.version} hash to {actual[:16]}..., "
            f"registry records {str(recorded)[:16]}...: the artifact was changed"
        )


def _refuse_non_finite(model: nn.Module, name: str, version: str) -> None:
    bad = [key for key, tensor in model.state_dict().items() if not torch.isfinite(tensor).all()]
    if bad:
        raise ModelIntegrityError(f"model: {name} version {version} has NaN/inf weights in {bad[:3]}")


def _download_state_dict(run_id: str, artifact: str, scratch: str) -> Path:
    """The state dict file the owner logged with `mlflow.pytorch.log_state_dict(..., artifact)` in `run_id`."""
    local = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/{artifact}", dst_path=scratch))
    files = [local] if local.is_file() else sorted(local.rglob("*.pth")) + sorted(local.rglob("*.pt"))
    if not files:
        raise adoption.AdoptionError(f"model: no state dict file under {artifact!r} in run {run_id}")
    return files[0]


def read_adopted_version(name: str, version) -> adoption.Adopted:
    """The weights of a version of an adopted model, read as its tags say (trusting nothing), unchecked."""
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version.version}", dst_path=f"{scratch}/model"))
        artifact = version.tags.get(adoption.TAG_STATE_DICT)
        state_dict = _download_state_dict(version.run_id, artifact, f"{scratch}/run") if artifact else None
        return adoption.load_adopted_version(local, version.tags, state_dict)


def _load_adopted_version(settings: Settings, name: str, version) -> RegisteredModel:
    """A version of a model Erasure adopted (pipelines/adapters/adoption.py), re-hashed like its own."""
    adopted = read_adopted_version(name, version)
    actual = weights_sha256(adopted.model)
    _refuse_changed_weights(name, version, actual)
    _refuse_non_finite(adopted.model, name, version.version)
    return RegisteredModel(name, str(version.version), version.run_id, adopted.architecture, actual, adopted.model,
                           dict(version.tags))


@_explain_refusals("adopt a model version")
def adopt_version(settings: Settings, name: str, version: str, architecture: str, config: dict[str, Any],
                  state_dict_artifact: str | None, trust_pickle: bool, tags: dict[str, str]) -> RegisteredModel:
    """Make `name` version `version` (logged with mlflow.pytorch by its owner) a model Erasure starts deletion
    requests from: its weights loaded strictly into `architecture`, hashed and tagged (adoption.py)."""
    found = _version(settings, name, version)
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{found.version}", dst_path=f"{scratch}/model"))
        adoption.flavor_of(local)
        state_dict = _download_state_dict(found.run_id, state_dict_artifact, f"{scratch}/run") if state_dict_artifact else None
        adopted = adoption.load_declared(local, state_dict, architecture, config, trust_pickle)
    _refuse_non_finite(adopted.model, name, found.version)
    digest = weights_sha256(adopted.model)
    if TAG_WEIGHTS in found.tags:
        # Already Erasure's: adopting again is a no-op if it says the same, and refused if it would change how the
        # version's weights are read (its audit trail hashes them that way).
        same = (found.tags.get(TAG_WEIGHTS) == digest and adoption.is_adopted(found.tags)
                and json.loads(found.tags.get(adoption.TAG_ARCHITECTURE, "null")) == adopted.architecture
                and found.tags.get(adoption.TAG_WEIGHTS_SOURCE) == adopted.weights_source)
        if not same:
            raise adoption.AdoptionError(
                f"model: {name} version {found.version} is already Erasure's (weights {found.tags[TAG_WEIGHTS][:16]}..., "
                f"read as {found.tags.get(adoption.TAG_ARCHITECTURE) or 'its own format'} from "
                f"{found.tags.get(adoption.TAG_WEIGHTS_SOURCE) or WEIGHTS_FILE}); adopting it otherwise would change "
                "what its audit trail hashed")
        return RegisteredModel(name, str(found.version), found.run_id, adopted.architecture, digest, adopted.model,
                               dict(found.tags))
    tag_version(settings, name, str(found.version), {
        **adoption.adoption_tags(adopted.architecture, adopted.weights_source, state_dict_artifact),
        TAG_WEIGHTS: digest, TAG_STATUS: "adopted", **tags,
    })
    return RegisteredModel(name, str(found.version), found.run_id, adopted.architecture, digest, adopted.model,
                           {**found.tags, **tags})


def write_model_files(model: nn.Module, architecture: str, directory: Path) -> tuple[Path, Path, str]:
    """Weights (safetensors) and architecture JSON in `directory`; returns both paths and the weights hash."""
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS_FILE
    save_file({key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}, weights)
    config = directory / ARCHITECTURE_FILE
    config.write_text(json.dumps(describe(architecture, model), indent=2, sort_keys=True))
    return weights, config, sha256_file(weights)


def read_model_files(directory: Path) -> tuple[nn.Module, dict[str, Any]]:
    """The model that `write_model_files` wrote into `directory`, and its architecture description."""
    architecture = json.loads((directory / ARCHITECTURE_FILE).read_text())
    model = build_model(architecture["architecture"], architecture["config"])
    model.load_state_dict(load_file(directory / WEIGHTS_FILE))
    return model.eval(), architecture


@_explain_refusals("register a model version")
def log_and_register(
    settings: Settings, run_id: str, name: str, model: nn.Module, architecture: str, tags: dict[str, str],
    parent: RegisteredModel | None = None,
) -> tuple[str, str]:
    """Log `model` as a pyfunc in run `run_id` (or packaged like an adopted `parent`), register it as a new
    version of `name`; (version, sha256).

    Idempotent per request: when `tags` name a request (TAG_REQUEST) that already registered these exact
    weights (a run killed or failed after registering), that version is returned and nothing new is made.
    """
    mlflow_client = client(settings)
    if parent is not None and adoption.is_adopted(parent.tags):
        # Packaged like the parent (same flavor, signature, example), so what served it serves this version.
        digest = weights_sha256(model)
        existing = find_request_version(settings, name, tags.get(TAG_REQUEST), digest)
        if existing is not None:
            return existing, digest
        tags = {**tags, **adoption.adoption_tags(parent.architecture, f"extra_files/{adoption.ERASURE_WEIGHTS}")}
        with tempfile.TemporaryDirectory() as scratch, mlflow.start_run(run_id=run_id):
            parent_dir = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{parent.version}", dst_path=scratch))
            logged = adoption.log_like_parent(model, parent_dir)
        return _create_version(mlflow_client, name, logged, run_id, digest, tags)
    with tempfile.TemporaryDirectory() as scratch:
        weights, config, digest = write_model_files(model, architecture, Path(scratch))
        existing = find_request_version(settings, name, tags.get(TAG_REQUEST), digest)
        if existing is not None:
            return existing, digest
        with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
            # MLflow nudges towards type-hinted predict(); the model's input is a plain tensor batch.
            warnings.filterwarnings("ignore", message=".*type hints.*")
            logged = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(SERVING_CODE),
                artifacts={"weights": str(weights), "architecture": str(config)},
                code_paths=[str(PROJECT_ROOT / "unlearning")],
                pip_requirements=["torch==2.13.0", "safetensors", "numpy"],
            )
    return _create_version(mlflow_client, name, logged, run_id, digest, tags)


def _create_version(mlflow_client: MlflowClient, name: str, logged, run_id: str, digest: str,
                    tags: dict[str, str]) -> tuple[str, str]:
    try:
        mlflow_client.get_registered_model(name)
    except MlflowException:
        mlflow_client.create_registered_model(name, description="Managed by Erasure: promoted only after verification.")
    # model_id ties the version to its logged model: MLflow's auth app refuses a `models:/` source without it.
    version = mlflow_client.create_model_version(
        name, logged.model_uri, run_id=run_id, tags={TAG_WEIGHTS: digest, **tags}, model_id=logged.model_id
    )
    return str(version.version), digest


def find_request_version(settings: Settings, name: str, request_id: str | None, weights_sha256: str) -> str | None:
    """The version of `name` that request `request_id` registered with weights `weights_sha256`, if any."""
    if not request_id:
        return None
    try:
        versions = client(settings).search_model_versions(f"name = '{name}' and tags.`{TAG_REQUEST}` = '{request_id}'")
    except MlflowException as error:
        if access_error(error, "search model versions") is not None:
            raise
        return None  # no such registered model yet
    matches = sorted(int(v.version) for v in versions if v.tags.get(TAG_WEIGHTS) == weights_sha256)
    return str(matches[0]) if matches else None


def version_run_id(settings: Settings, name: str, version: str) -> str:
    """The MLflow run that logged `version`'s model, where its ONNX export belongs too."""
    return client(settings).get_model_version(name, version).run_id


def alias_version(settings: Settings, name: str, alias: str) -> str | None:
    try:
        return str(client(settings).get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


@_explain_refusals("tag a model version")
def tag_version(settings: Settings, name: str, version: str, tags: dict[str, str]) -> None:
    mlflow_client = client(settings)
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(name, version, key, value)


def version_description(request_id: str, parent: str | None, status: str, promoted_alias: str | None,
                        method: str | None, sequence: int, record_sha256: str) -> str:
    """One line for the MLflow UI's version description: request, parent, verdict, where the audit record is."""
    verdict = f"verdict {status}" + (f", promoted to @{promoted_alias}" if promoted_alias else ", not promoted")
    return (f"request {request_id}: unlearned from version {parent or '-'}" + (f" by {method}" if method else "")
            + f"; {verdict}; audit record #{sequence} sha256 {record_sha256[:16]}")


@_explain_refusals("describe a model version")
def describe_version(settings: Settings, name: str, version: str, description: str) -> None:
    client(settings).update_model_version(name, version, description=description)


@_explain_refusals("move a model alias (promote)")
def promote(settings: Settings, name: str, alias: str, version: str, previous: str | None) -> None:
    """Move `alias` to `version` (one atomic registry call), then record the lineage on both versions."""
    client(settings).set_registered_model_alias(name, alias, version)
    from pipelines.audit.record import now

    tag_version(settings, name, version, {TAG_STATUS: "promoted", TAG_PROMOTED_AT: now()})
    if previous is not None:
        tag_version(settings, name, previous, {TAG_CHILD: version, TAG_STATUS: "superseded"})
