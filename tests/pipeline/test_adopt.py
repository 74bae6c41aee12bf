"""Bring your own model: the example package's classifier, trained and logged by plain PyTorch + MLflow code
in a DVC repository of its own, adopted by `erasure model adopt` and unlearned through the real flow.

The example package (examples/acme-wine) is installed into the venv by `make setup`, as a user would install
theirs: it adds its architecture through the `erasure.architectures` entry point, with no edit to Erasure.
The module's world is the onboarding walk-through itself: its README's shell block, run as written in a
state directory of its own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow.models import Model
from typer.testing import CliRunner

from pipelines.adapters import registry
from pipelines.adapters.adoption import TAG_PACKAGING
from pipelines.adapters.settings import PROJECT_ROOT, load_settings
from pipelines.cli import app
from tests.pipeline.onboarding import plugin_surface_violations, walked_through

pytestmark = pytest.mark.e2e

EXAMPLE = PROJECT_ROOT / "examples" / "acme-wine"
pytest.importorskip("acme_wine", reason="the example package (examples/acme-wine) is installed by make setup")


@pytest.fixture(scope="module")
def acme(tmp_path_factory):
    """The README's walk-through, run as written in a state directory of its own (tests/pipeline/onboarding.py);
    this module's tests then read that MLflow store and the data repository the README made."""
    with walked_through(EXAMPLE, tmp_path_factory.mktemp("acme-home"), "acme/data") as walkthrough:
        yield walkthrough


def adopt(*options: str, uri: str = "models:/acme-wine/1"):
    return CliRunner().invoke(app, ["model", "adopt", uri, "--architecture", "acme-wine-mlp", "--task-kind",
                                    "classification", *options])


def train_another_version(acme) -> str:
    """Acme's training script run again, as its team would (its own process: it sets MLflow's experiment)."""
    result = subprocess.run([sys.executable, "-m", "acme_wine.train", "--repo", "data"], cwd=acme.home / "acme",
                            capture_output=True, text=True, check=True, timeout=600)
    return re.search(r"registered acme-wine version (\d+)", result.stdout).group(1)


def test_the_onboarding_readme_runs_as_written(acme):
    output = acme.output
    assert acme.result.returncode == 0, output[-3000:]
    assert "acme-wine-mlp" in output and "acme-wine==1.0.0" in output  # erasure plugins
    assert "adopted acme-wine version 1 as acme-wine-mlp (classification kind)" in output
    assert "verdict: passed" in output and "promoted acme-wine version 1 -> 2" in output
    assert "VERIFIED" in output
    assert (acme.home / "acme" / "report" / "report.html").is_file()
    served = json.loads(re.search(r'\{"predictions": .*?\]\]\}', output).group())
    assert np.asarray(served["predictions"]).shape == (1, 3)


def test_onboarding_changed_no_file_of_erasure(acme):
    assert acme.sources_after == acme.sources_before
    assert acme.tree_after == acme.tree_before  # nor left anything in its checkout (an ./mlruns, say)


def test_the_unlearned_version_is_packaged_and_served_like_its_parent(acme):
    parent, child = (Model.load(f"models:/acme-wine/{version}") for version in ("1", "2"))
    assert set(child.flavors) == set(parent.flavors) == {"pytorch", "python_function"}
    assert child.signature == parent.signature and child.signature is not None
    assert child.saved_input_example_info == parent.saved_input_example_info
    example = np.full((4, 13), 0.5, dtype=np.float32)
    parent_out, child_out = (mlflow.pyfunc.load_model(f"models:/acme-wine/{v}").predict(example) for v in ("1", "2"))
    assert np.asarray(parent_out).shape == np.asarray(child_out).shape == (4, 3)
    forgotten = pd_table(acme, "train-cultivar-2.parquet")
    child_model = mlflow.pyfunc.load_model("models:/acme-wine/2")
    parent_model = mlflow.pyfunc.load_model("models:/acme-wine/1")
    assert (np.asarray(parent_model.predict(forgotten)).argmax(1) == 2).mean() > 0.9  # it knew cultivar 2
    assert (np.asarray(child_model.predict(forgotten)).argmax(1) == 2).mean() == 0.0  # and no longer does


def pd_table(acme, name: str) -> np.ndarray:
    import pandas as pd

    table = pd.read_parquet(acme.home / "acme" / "data" / "data" / name)
    return table.drop(columns=["cultivar", "record_id"]).to_numpy().astype(np.float32)


def test_the_record_keeps_hashes_and_counts_of_the_tables_never_rows(acme):
    record = json.loads((acme.home / "acme" / "record.json").read_text())
    forget = record["forget_data"]
    assert forget["examples"] > 0 and len(forget["sha256"]) == 64
    assert record["model"]["version_after"] == "2"
    # The training table holds the forgotten rows, and tables are read, not rewritten: said, not "unchanged".
    assert record["data_erasure"]["status"] == "skipped", record["data_erasure"]
    assert "data/train.parquet" in record["data_erasure"]["reason"]
    import pandas as pd

    forgotten_ids = set(pd.read_parquet(acme.home / "acme" / "data" / "data" / "train-cultivar-2.parquet")["record_id"])
    assert not forgotten_ids & set(scalars(record)) and not {str(i) for i in forgotten_ids} & set(scalars(record))


def scalars(value):
    """Every scalar in a JSON document."""
    if isinstance(value, dict):
        for item in value.values():
            yield from scalars(item)
    elif isinstance(value, list):
        for item in value:
            yield from scalars(item)
    else:
        yield value


def test_the_example_package_imports_only_the_plugin_surface():
    assert plugin_surface_violations(EXAMPLE / "acme_wine") == []


def test_weights_that_do_not_fit_the_architecture_are_refused_naming_the_first_tensor(acme):
    result = adopt("--state-dict", "state_dict", "--config", '{"hidden": 16}', "--alias", "mismatched")
    assert result.exit_code == 2, result.output
    assert "tensor 'layers.0.weight' is (32, 13) in the version, (16, 13) in the architecture" in " ".join(result.output.split())
    assert registry.alias_version(load_settings(), "acme-wine", "mismatched") is None  # nothing adopted


def test_a_pickled_module_is_read_only_when_the_adopter_trusts_it(acme):
    version = train_another_version(acme)
    refused = adopt(uri=f"models:/acme-wine/{version}")
    assert refused.exit_code == 2 and "--trust-pickle" in refused.output, refused.output
    trusted = adopt("--trust-pickle", "--alias", "trusted", uri=f"models:/acme-wine/{version}")
    assert trusted.exit_code == 0, trusted.output
    loaded = registry.load_by_alias(load_settings(), "acme-wine", "trusted")
    assert loaded.tags["erasure.weights_source"] == "pickle"
    assert loaded.model(torch.zeros(1, 13)).shape == (1, 3)


def test_an_adopted_version_is_not_adopted_again_another_way(acme):
    again = adopt("--state-dict", "state_dict", "--training-data", "data/train.parquet@main", "--alias", "again")
    assert again.exit_code == 0, again.output  # the same declaration: a no-op
    other = adopt("--trust-pickle", "--alias", "other")
    assert other.exit_code == 2 and "already Erasure's" in " ".join(other.output.split()), other.output
    assert registry.alias_version(load_settings(), "acme-wine", "other") is None


def test_an_architecture_that_is_not_installed_is_refused_naming_it(acme):
    result = CliRunner().invoke(app, ["model", "adopt", "models:/acme-wine/1", "--architecture", "acme-wine-cnn",
                                      "--task-kind", "classification", "--state-dict", "state_dict"])
    assert result.exit_code == 2 and "unknown architecture 'acme-wine-cnn'" in result.output, result.output


def test_a_task_kind_the_architecture_does_not_declare_is_refused(acme):
    wrong = CliRunner().invoke(app, ["model", "adopt", "models:/acme-wine/1", "--architecture", "acme-wine-mlp",
                                     "--task-kind", "restoration", "--state-dict", "state_dict"])
    assert wrong.exit_code == 2 and "declares task kind 'classification'" in " ".join(wrong.output.split()), wrong.output


def test_adopted_versions_load_trusting_nothing_with_their_hash_and_lineage(acme):
    settings = load_settings()
    adopted, unlearned = registry.load_version(settings, "acme-wine", "1"), registry.load_version(settings, "acme-wine", "2")
    assert adopted.tags[TAG_PACKAGING] == unlearned.tags[TAG_PACKAGING] == "mlflow.pytorch"
    assert adopted.tags["erasure.weights_source"] == "run state dict"  # torch.load(weights_only=True)
    assert unlearned.tags["erasure.weights_source"] == "extra_files/weights.safetensors"
    for version in (adopted, unlearned):
        assert version.weights_sha256 == registry.weights_sha256(version.model)
    assert adopted.lineage is not None and adopted.lineage.paths == ["data/train.parquet"]


def test_a_broken_plugin_is_reported_by_name_and_the_others_still_load(tmp_path):
    dist = tmp_path / "broken_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[erasure.methods]\nbroken_method = no_such_module.anywhere:Method\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "COLUMNS": "250"}
    result = subprocess.run([sys.executable, "-m", "pipelines.cli", "plugins"], capture_output=True, text=True, env=env,
                            cwd=PROJECT_ROOT, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "broken_method" in result.stdout and "No module named 'no_such_module'" in result.stdout
    assert "gradient_ascent" in result.stdout and "acme-wine-mlp" in result.stdout  # the others load
    # A request naming it is refused with that error; one naming another method is not affected.
    probe = ("from unlearning.methods import create_method\n"
             "create_method('gradient_ascent', {})\n"
             "try:\n    create_method('broken_method', {})\nexcept Exception as error:\n    print(error)\n")
    named = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
    assert "method 'broken_method' is installed but failed to load (broken-plugin==0.1" in named.stdout, named.stderr


def test_a_parent_logged_with_mlflows_default_pt2_gets_pt2_children(acme):
    """MLflow 3 logs a module with torch.export (pt2) unless told otherwise: the child is pt2 too."""
    from mlflow.models import infer_signature

    from acme_wine.model import WineClassifier

    model = WineClassifier().eval()
    example = np.full((4, 13), 0.5, dtype=np.float32)
    signature = infer_signature(example, model(torch.from_numpy(example)).detach().numpy())
    # An explicit experiment, never mlflow.set_experiment: that would outlive this test in the worker's process.
    experiment = mlflow.MlflowClient().get_experiment_by_name("acme-wine-training").experiment_id
    with mlflow.start_run(experiment_id=experiment):
        logged = mlflow.pytorch.log_model(model, name="model", signature=signature, input_example=example,
                                          pip_requirements=["torch==2.13.0"])
        mlflow.pytorch.log_state_dict(model.state_dict(), artifact_path="state_dict")
    version = mlflow.register_model(logged.model_uri, "acme-wine").version
    assert adopt("--state-dict", "state_dict", "--alias", "pt2", uri=f"models:/acme-wine/{version}").exit_code == 0
    settings = load_settings()
    parent = registry.load_by_alias(settings, "acme-wine", "pt2")
    with mlflow.start_run(experiment_id=experiment) as run:
        pass
    child, _ = registry.log_and_register(settings, run.info.run_id, "acme-wine", parent.model, "acme-wine-mlp",
                                         {registry.TAG_REQUEST: "req-pt2-packaging"}, parent=parent)
    child_dir = Path(mlflow.artifacts.download_artifacts(f"models:/acme-wine/{child}"))
    assert [path.name for path in (child_dir / "data").iterdir()] == ["model.pt2"]
    assert Model.load(f"models:/acme-wine/{child}").signature == Model.load(f"models:/acme-wine/{version}").signature
    assert np.asarray(mlflow.pyfunc.load_model(f"models:/acme-wine/{child}").predict(example)).shape == (4, 3)
    assert registry.load_version(settings, "acme-wine", child).weights_sha256 == parent.weights_sha256


def test_a_table_request_by_record_id_reads_the_ids_from_the_named_column(acme, tmp_path):
    """Forgetting cultivar 2's rows by their record ids (the table's `record_id` column), not by a file of them."""
    import pandas as pd
    import yaml

    from pipelines.audit import read_record
    from tests.pipeline.conftest import run_flow

    train = pd.read_parquet(acme.home / "acme" / "data" / "data" / "train.parquet")
    ids = sorted(int(i) for i in train.loc[train["cultivar"] == 2, "record_id"])
    request = yaml.safe_load((EXAMPLE / "request.yaml").read_text())
    request.update(request_id="req-acme-by-record-id",
                   forget={"records": ids, "sets": ["data/train.parquet"], "table": {"label": "cultivar", "id": "record_id"},
                           "evaluation": "data/test-cultivar-2.parquet"})
    path = tmp_path / "by-record-id.yaml"
    path.write_text(yaml.safe_dump(request))
    outcome = run_flow(path)
    assert outcome["status"] == "passed", outcome
    record = read_record(load_settings(), "req-acme-by-record-id")
    assert record.forget_data["examples"] == len(ids) and record.forget_data["records"]["count"] == len(ids)
    assert not set(ids) & set(scalars(record.model_dump(mode="json")))  # a keyed commitment, not the ids
