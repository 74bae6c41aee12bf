"""Adopting a model Erasure did not train: a version logged with `mlflow.pytorch.log_model` by its owner.

`erasure model adopt models:/NAME/VERSION --architecture ENTRY --task-kind KIND` checks that the version's
weights load into the declared architecture (an installed `erasure.architectures` entry), hashes them,
records the lineage, tags the version so that Erasure can start deletion requests from it, and points the
alias at it. The weights are read one of two ways, and the tags say which:

    state dict   a state dict the owner logged beside the model (`mlflow.pytorch.log_state_dict`) or the
                 safetensors file Erasure writes beside its own versions: read with torch's weights-only
                 loader or safetensors, so loading trusts nothing in the artifact;
    pickle       the module `mlflow.pytorch.log_model` stored (pickled, or torch.export's pt2): loading it
                 runs code named in the artifact (the owner's classes, or anything a tampered file names),
                 so it is used only when the adopter says `--trust-pickle`, and only to take the state dict
                 out of it. The trust is recorded in the version's tags: later loads of that version (each
                 request starting from it) unpickle it too; the versions Erasure registers from it do not.

The versions Erasure registers from an adopted parent keep the parent's packaging: the `pytorch` flavor,
its signature, input example and requirements, the same registered model name, so whatever served the
parent serves them. Each also carries Erasure's safetensors weights (`extra_files/`), the trust-nothing path.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import torch
from mlflow.models import Model
from safetensors.torch import load_file, save_file
from torch import nn

from unlearning.models import architecture_named

TAG_PACKAGING = "erasure.packaging"
TAG_ARCHITECTURE = "erasure.architecture"
TAG_WEIGHTS_SOURCE = "erasure.weights_source"
PYTORCH_PACKAGING = "mlflow.pytorch"
ERASURE_WEIGHTS = "weights.safetensors"  # in the model directory's extra_files/ of the versions Erasure registers
PICKLE_SOURCE = "pickle"
STATE_DICT_SOURCE = "run state dict"  # TAG_STATE_DICT names its artifact path in the version's run
TAG_STATE_DICT = "erasure.state_dict_artifact"


class AdoptionError(ValueError):
    """The version cannot be adopted as declared (no pytorch flavor, weights that do not fit, pickle not trusted)."""


@dataclass(frozen=True)
class Adopted:
    model: nn.Module
    architecture: dict[str, Any]  # {"architecture": name, "config": {...}}, as Erasure's own versions describe it
    weights_source: str


def flavor_of(model_dir: Path) -> dict[str, Any]:
    flavors = Model.load(str(model_dir / "MLmodel")).flavors
    if "pytorch" not in flavors:
        raise AdoptionError(f"model: the version has flavors {sorted(flavors)}; Erasure adopts models logged with "
                            "mlflow.pytorch.log_model (the pytorch flavor)")
    return flavors["pytorch"]


def load_declared(model_dir: Path, run_state_dict: Path | None, architecture: str, config: dict[str, Any],
                  trust_pickle: bool, weights_source: str | None = None) -> Adopted:
    """The version's weights loaded into a fresh model of `architecture`, strictly (every tensor, every shape).

    The source is, in order: `weights_source` as recorded at adoption; Erasure's own safetensors in the model
    directory; the state dict the owner logged (`run_state_dict`); the pickled module, if trusted."""
    declared = architecture_named(architecture)
    model = declared.build(config)
    source = weights_source or _pick_source(model_dir, run_state_dict, trust_pickle)
    state = _read_state(model_dir, run_state_dict, source)
    check_fits(model, state, architecture)
    model.load_state_dict(state)
    return Adopted(model.eval(), {"architecture": architecture, "config": config}, source)


def _pick_source(model_dir: Path, run_state_dict: Path | None, trust_pickle: bool) -> str:
    if (model_dir / "extra_files" / ERASURE_WEIGHTS).is_file():
        return f"extra_files/{ERASURE_WEIGHTS}"
    if run_state_dict is not None:
        return STATE_DICT_SOURCE
    if trust_pickle:
        return PICKLE_SOURCE
    raise AdoptionError(
        "model: the version holds a pickled module only; loading it runs code named in the artifact. Log the "
        "state dict beside it (mlflow.pytorch.log_state_dict(model.state_dict(), 'state_dict')) and pass "
        "--state-dict state_dict, or pass --trust-pickle if you produced this artifact yourself"
    )


def _read_state(model_dir: Path, run_state_dict: Path | None, source: str) -> dict[str, torch.Tensor]:
    if source.startswith("extra_files/"):
        return load_file(model_dir / source)
    if source == STATE_DICT_SOURCE:
        if run_state_dict is None:
            raise AdoptionError(f"model: the recorded weights source {source} is not in the version's run")
        return torch.load(run_state_dict, map_location="cpu", weights_only=True)
    if source == PICKLE_SOURCE:
        module = mlflow.pytorch.load_model(str(model_dir), map_location="cpu")  # unpickles: trusted by the adopter
        return module.state_dict()
    raise AdoptionError(f"model: unknown weights source {source!r}")


def check_fits(model: nn.Module, state: dict[str, torch.Tensor], architecture: str) -> None:
    """Refuse weights that do not fit the architecture, naming the first tensor that does not."""
    expected = model.state_dict()
    for key in expected:
        if key not in state:
            raise AdoptionError(f"model: weights do not fit architecture {architecture!r}: tensor {key!r} "
                                f"{tuple(expected[key].shape)} is missing from the version")
        if tuple(state[key].shape) != tuple(expected[key].shape):
            raise AdoptionError(f"model: weights do not fit architecture {architecture!r}: tensor {key!r} is "
                                f"{tuple(state[key].shape)} in the version, {tuple(expected[key].shape)} in the architecture")
    extra = [key for key in state if key not in expected]
    if extra:
        raise AdoptionError(f"model: weights do not fit architecture {architecture!r}: tensor {extra[0]!r} "
                            "is in the version but not in the architecture")


def adoption_tags(architecture: dict[str, Any], weights_source: str, state_dict_artifact: str | None = None) -> dict[str, str]:
    tags = {
        TAG_PACKAGING: PYTORCH_PACKAGING,
        TAG_ARCHITECTURE: json.dumps(architecture, sort_keys=True),
        TAG_WEIGHTS_SOURCE: weights_source,
    }
    if state_dict_artifact:
        tags[TAG_STATE_DICT] = state_dict_artifact
    return tags


def is_adopted(tags: dict[str, str]) -> bool:
    return tags.get(TAG_PACKAGING) == PYTORCH_PACKAGING


def load_adopted_version(local: Path, tags: dict[str, str], run_state_dict: Path | None) -> Adopted:
    """A version of an adopted model, as its tags say to read it (never unpickling unless adoption trusted it)."""
    architecture = json.loads(tags[TAG_ARCHITECTURE])
    return load_declared(local, run_state_dict, architecture["architecture"], architecture["config"],
                         trust_pickle=False, weights_source=tags[TAG_WEIGHTS_SOURCE])


def serialization_format(model_dir: Path) -> str:
    """How the pytorch flavor stored the module: `pt2` (torch.export, MLflow 3's default) or `pickle`."""
    return "pt2" if any((model_dir / "data").glob("*.pt2")) else "pickle"


def log_like_parent(model: nn.Module, parent_dir: Path):
    """Log `model` in the active run with the parent's packaging: the pytorch flavor serialised as the parent
    was (pickle or pt2), the parent's signature, input example and requirements, and Erasure's safetensors
    weights as an extra file."""
    parent = Model.load(str(parent_dir / "MLmodel"))
    input_example = None
    try:
        input_example = parent.load_input_example(str(parent_dir))
    except Exception:  # a parent logged without an example gets none: it is copied, not invented
        input_example = None
    requirements = parent_dir / "requirements.txt"
    with tempfile.TemporaryDirectory() as scratch:
        weights = Path(scratch) / ERASURE_WEIGHTS
        save_file({key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}, weights)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*serialization_format.*")
            return mlflow.pytorch.log_model(
                model,
                name="model",
                serialization_format=serialization_format(parent_dir),
                signature=parent.signature,
                input_example=input_example,
                pip_requirements=str(requirements) if requirements.is_file() else None,
                extra_files=[str(weights)],
            )
