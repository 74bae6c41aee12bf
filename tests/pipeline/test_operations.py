"""Operations: requests are processed at most once, the inbox files outcomes, and bad input of every
kind is refused with a named reason, no promotion and an audit record (catalogue: docs/errors.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from pipelines.adapters import registry
from pipelines.adapters.settings import PROJECT_ROOT, load_settings
from pipelines.audit import chain, read_record
from pipelines.audit.verify import verify_trail
from tests.conftest import commit_data
from tests.pipeline.conftest import champion, prefect_api_url, quick_request, register_model, request_file, run_flow
from unlearning.data.pairs import decode_arrays, encode_arrays
from unlearning.data.restoration import set_path

pytestmark = [pytest.mark.e2e]


def assert_refused(outcome: dict, stage: str, *fragments: str) -> None:
    assert outcome["status"] == "rejected", outcome
    assert outcome["stage"] == stage and outcome["version_after"] is None
    for fragment in fragments:
        assert fragment in outcome["error"]
    assert read_record(load_settings(), outcome["request_id"]).status == "rejected"


def test_a_processed_request_is_not_processed_again(world, tmp_path):
    path = request_file(tmp_path, "req-once", thresholds={"forget_max_gain_db": -5.0, "retain_max_drop_db": 0.3})
    first = run_flow(path)
    second = run_flow(path)
    assert first["status"] == second["status"] == "rejected"
    assert not first["replayed"] and second["replayed"]
    assert second["mlflow_run_id"] == first["mlflow_run_id"]


def test_inbox_processes_in_order_and_files_each_outcome(world, tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "pending").mkdir(parents=True)
    start = champion()
    request_file(inbox / "pending", "req-inbox-1")
    request_file(inbox / "pending", "req-inbox-2", thresholds={"forget_max_gain_db": -5.0, "retain_max_drop_db": 0.3})
    request_file(inbox / "pending", "req-inbox-3")
    from pipelines.operations.inbox import inbox_flow

    outcomes = inbox_flow(str(inbox))
    assert [o["status"] for o in outcomes] == ["passed", "rejected", "passed"]
    # Serialized: the third request starts from the version the first one promoted.
    assert outcomes[0]["version_before"] == start
    assert outcomes[2]["version_before"] == outcomes[0]["version_after"]
    assert champion() == outcomes[2]["version_after"]
    assert sorted(p.name for p in (inbox / "done").glob("*.yaml")) == ["req-inbox-1.yaml", "req-inbox-3.yaml"]
    assert json.loads((inbox / "rejected" / "req-inbox-2.outcome.json").read_text())["stage"] == "verify"
    assert not list((inbox / "pending").iterdir())


def test_unknown_alias_is_refused(world, tmp_path):
    outcome = run_flow(request_file(tmp_path, "req-noalias", model="tiny-restorer@nonexistent"))
    assert_refused(outcome, "pull model", "tiny-restorer@nonexistent")


def test_path_missing_at_the_revision_is_refused(world, tmp_path):
    outcome = run_flow(request_file(tmp_path, "req-nopath", forget__path="data/restoration/train/smog.safetensors"))
    assert_refused(outcome, "pull data", "smog.safetensors", "main")


def test_unknown_method_is_refused_listing_methods(world, tmp_path):
    outcome = run_flow(request_file(tmp_path, "req-nomethod", method={"name": "forget_harder", "params": {}}))
    assert_refused(outcome, "unlearn", "forget_harder", "gradient_ascent")


def test_method_params_out_of_range_are_refused(world, tmp_path):
    outcome = run_flow(request_file(tmp_path, "req-badparam", method={"name": "gradient_ascent", "params": {"steps": -3}}))
    assert_refused(outcome, "unlearn", "steps")


def test_swapped_weights_behind_a_version_are_refused(world, tiny_world, tmp_path):
    register_model("swapped-restorer", tiny_world.fresh_model(), tmp_path / "original")
    client = MlflowClient()
    version = client.get_model_version_by_alias("swapped-restorer", "champion")
    # Registered from a logged model, so the version's source is `models:/<model id>`.
    location = client.get_logged_model(version.source.removeprefix("models:/")).artifact_location
    weights = Path(urlparse(location).path) / "artifacts" / registry.WEIGHTS_FILE
    other = tiny_world.fresh_model()
    with torch.no_grad():
        next(other.parameters()).add_(0.01)
    registry.write_model_files(other, "restorer-unet", tmp_path / "other")
    weights.write_bytes((tmp_path / "other" / registry.WEIGHTS_FILE).read_bytes())
    outcome = run_flow(request_file(tmp_path, "req-swapped", model="swapped-restorer@champion"))
    assert_refused(outcome, "pull model", "the artifact was changed")


def test_model_with_nan_weights_is_refused(world, tiny_world, tmp_path):
    broken = tiny_world.fresh_model()
    with torch.no_grad():
        next(broken.parameters()).view(-1)[0] = float("nan")
    register_model("nan-restorer", broken, tmp_path / "nan")
    outcome = run_flow(request_file(tmp_path, "req-nanmodel", model="nan-restorer@champion"))
    assert_refused(outcome, "pull model", "NaN/inf weights")
    assert registry.alias_version(load_settings(), "nan-restorer", "champion") == "1"

def test_concurrent_requests_for_one_model_are_serialized_into_a_chain_of_versions(world, tiny_world, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    model = "busy-restorer"
    register_model(model, tiny_world.fresh_model(), tmp_path / "base")
    requests = [quick_request(tmp_path, f"req-busy-{n}", model) for n in range(3)]
    prefect_api_url()
    with ThreadPoolExecutor(max_workers=3) as pool:
        outcomes = list(pool.map(run_flow, requests))

    assert [o["status"] for o in outcomes] == ["passed"] * 3, outcomes
    steps = sorted((int(o["version_before"]), int(o["version_after"])) for o in outcomes)
    # Each request started from the version the one before it promoted: 1 -> 2 -> 3 -> 4, no fork.
    assert steps == [(1, 2), (2, 3), (3, 4)]
    assert champion(model) == "4"
    settings = load_settings()
    ledger = chain.read_ledger(chain.ledger_path(settings, model))
    by_version = {o["version_after"]: o["request_id"] for o in outcomes}
    assert [entry.request_id for entry in ledger] == [by_version[v] for v in ("2", "3", "4")]
    report = verify_trail(settings, model=model)
    assert report.ok, [str(problem) for problem in report.problems]

def test_a_request_id_reused_for_a_different_request_is_refused(world, tmp_path):
    path = request_file(tmp_path, "req-reused", model="tiny-restorer@nonexistent")
    first = run_flow(path)
    path.write_text(path.read_text().replace("reason: test", "reason: another request, same id"))
    second = run_flow(path)
    assert first["status"] == "rejected" and first["stage"] == "pull model"
    assert second["status"] == "rejected" and second["stage"] == "load request" and second["replayed"]
    assert "'req-reused' was already used by a different request" in second["error"]
    record = read_record(load_settings(), "req-reused")
    assert record.failed_stage == "pull model" and record.mlflow_run_id == first["mlflow_run_id"]


HEAVY_TOOLS = ("prefect", "mlflow", "dvc", "great_expectations", "torch")
CLI_PROBE = """
import json, sys
from pipelines.cli import app
try:
    app(["request", "run", sys.argv[1]])
except SystemExit as exit:
    code = exit.code
print(json.dumps({"exit": code, "imported": [m for m in %r if m in sys.modules]}), file=sys.stderr)
""" % (HEAVY_TOOLS,)


def cli_output(outcome: dict, monkeypatch, capsys) -> str:
    from rich.console import Console

    from pipelines.cli import request as cli

    monkeypatch.setattr(cli, "console", Console(width=200))
    capsys.readouterr()
    cli._print_outcome(outcome)
    return capsys.readouterr().out


def test_a_decided_request_is_answered_by_the_cli_from_its_record_without_importing_the_tools(
    world, tmp_path, monkeypatch, capsys
):
    path = request_file(tmp_path, "req-fast-replay", model="tiny-restorer@nonexistent")
    first = run_flow(path)
    flow_replay = run_flow(path)
    assert first["status"] == "rejected" and flow_replay["replayed"]
    probe = subprocess.run(
        [sys.executable, "-c", CLI_PROBE, str(path)], capture_output=True, text=True, cwd=PROJECT_ROOT,
        env={**os.environ, "COLUMNS": "200"}, timeout=120,
    )
    answer = json.loads(probe.stderr.strip().splitlines()[-1])
    assert answer == {"exit": 1, "imported": []}, probe.stderr
    assert probe.stdout == cli_output(flow_replay, monkeypatch, capsys)
    assert "(already processed: recorded outcome)" in probe.stdout


def test_a_local_record_edited_after_it_was_chained_is_no_answer_without_the_flow(world, tmp_path):
    from pipelines.audit import local_record_path
    from pipelines.operations.replay import decided_outcome

    path = request_file(tmp_path, "req-fast-edited", model="tiny-restorer@nonexistent")
    assert run_flow(path)["status"] == "rejected"
    settings = load_settings()
    assert decided_outcome(settings, path)["replayed"]
    local = local_record_path(settings, "req-fast-edited")
    local.write_bytes(local.read_bytes().replace(b"nonexistent", b"elsewhere", 1))  # still a valid record
    assert decided_outcome(settings, path) is None


def test_a_reused_id_with_a_different_file_takes_the_cli_through_the_flow_and_is_refused(world, tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli import app
    from pipelines.operations.replay import decided_outcome

    path = request_file(tmp_path, "req-fast-reused", model="tiny-restorer@nonexistent")
    assert run_flow(path)["status"] == "rejected"
    path.write_text(path.read_text().replace("reason: test", "reason: another request, same id"))
    assert decided_outcome(load_settings(), path) is None
    result = CliRunner().invoke(app, ["request", "run", str(path)])
    assert result.exit_code == 1, result.output
    assert "already used by a different request" in " ".join(result.output.split())
    assert read_record(load_settings(), "req-fast-reused").failed_stage == "pull model"


def test_forget_set_that_is_the_whole_training_set_is_refused_for_a_method_that_needs_retain_data(
    world, tiny_world, tmp_path
):
    sets = [decode_arrays(tiny_world.files[set_path("train", name)], name)[0] for name in ("haze", "noise", "rain")]
    everything = {key: np.concatenate([arrays[key] for arrays in sets]) for key in ("inputs", "targets")}
    rev = commit_data(world, {"restoration/train/everything.safetensors": encode_arrays(everything, {"task": "restoration"})}, "all")
    before = champion()
    outcome = run_flow(
        request_file(
            tmp_path, "req-everything", forget__path="data/restoration/train/everything.safetensors", forget__rev=rev,
            method={"name": "finetune", "params": {"steps": 5}},
        )
    )
    assert_refused(outcome, "unlearn", "'finetune' needs retain data", "nothing is left to retain")
    assert champion() == before
