"""A registered tiny base model and request files for the end-to-end tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml

from pipelines.adapters import registry
from pipelines.adapters.settings import load_settings
from pipelines.flow.base_model import register_base_model

MODEL = "tiny-restorer"


@pytest.fixture(scope="session")
def world(tiny_world, data_repo, tmp_path_factory):
    os.environ["ERASURE_DATA_REPO"] = str(data_repo)
    model_dir = tmp_path_factory.mktemp("base-model")
    registry.write_model_files(tiny_world.model, "restorer-unet", model_dir)
    (model_dir / "metrics.json").write_text("{}")
    register_base_model(load_settings(), model_dir, MODEL, "champion")
    yield data_repo
    os.environ.pop("ERASURE_DATA_REPO", None)


def request_file(directory: Path, request_id: str, **overrides) -> Path:
    request = {
        "request_id": request_id,
        "model": f"{MODEL}@champion",
        "forget": {
            "path": "data/restoration/train/haze.safetensors",
            "rev": "main",
            "evaluation": "data/restoration/eval/haze.safetensors",
        },
        "retain": {
            "paths": ["data/restoration/train/noise.safetensors", "data/restoration/train/rain.safetensors"],
            "evaluation": ["data/restoration/eval/noise.safetensors", "data/restoration/eval/rain.safetensors"],
        },
        "method": {"name": "gradient_ascent", "params": {"steps": 60, "learning_rate": 3e-4, "retain_weight": 3.0}},
        "thresholds": {"forget_max_gain_db": 0.5, "retain_max_drop_db": 0.3},
        "requested_by": "dpo@example.org",
        "reason": "test",
    }
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        if field:
            request[section] = {**request[section], field: value}
        else:
            request[section] = value
    path = directory / f"{request_id}.yaml"
    path.write_text(yaml.safe_dump(request))
    return path


def prefect_api_url() -> str:
    """This worker's ephemeral Prefect server, started if it is not yet running; returns its API URL.

    Started up front where several flows begin at once: Prefect's lazy start is not thread-safe (a second
    thread finds `running` set before the server process exists and fails "Server process did not start").
    """
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    return server.api_url


def run_flow(path: Path) -> dict:
    from pipelines.flow.deletion import deletion_flow

    return deletion_flow(str(path))


def champion(model: str = MODEL) -> str:
    return registry.alias_version(load_settings(), model, "champion")


def register_model(name: str, model: torch.nn.Module, directory: Path, architecture: str = "restorer-unet",
                   lineage=None) -> str:
    """Register `model` as version 1 of `name`, alias champion: a model (and audit chain) of the test's own.
    Returns the version; `lineage` (pipelines/erasure/lineage.py): the training data to tag it with."""
    registry.write_model_files(model, architecture, directory)
    (directory / "metrics.json").write_text("{}")
    return register_base_model(load_settings(), directory, name, "champion", lineage)


# A request that unlearns in seconds and passes any verification: for tests about operations, not forgetting.
QUICK_METHOD = {"name": "gradient_ascent", "params": {"steps": 5, "learning_rate": 3e-4, "retain_weight": 3.0}}
ANY_RESULT = {"forget_max_gain_db": 30.0, "retain_max_drop_db": 30.0}


def quick_request(directory: Path, request_id: str, model: str, **overrides) -> Path:
    return request_file(
        directory, request_id, model=f"{model}@champion", method=QUICK_METHOD, thresholds=ANY_RESULT, **overrides
    )
