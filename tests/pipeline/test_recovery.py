"""Crash recovery: a request SIGKILLed at any stage is finished by running it again, with no duplicate
version, no alias on an unverified version, exactly one audit record and an audit chain that verifies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from pipelines.adapters import registry
from pipelines.adapters.settings import PROJECT_ROOT, load_settings
from pipelines.audit import chain, read_record
from pipelines.audit.verify import verify_trail
from pipelines.operations.faults import FAULT_INJECT_ENV
from tests.pipeline.conftest import champion, prefect_api_url, quick_request, register_model, run_flow

pytestmark = [pytest.mark.e2e]


def run_killed(request: Path, stage: str) -> subprocess.CompletedProcess:
    """`erasure request run` in a child process that SIGKILLs itself entering `stage`.

    The child inherits this worker's ERASURE_HOME, MLflow store and data repository, and uses the worker's
    Prefect server, so it pays for no server start of its own. It runs in its own process group so that
    anything it started and left behind when it was killed is killed too.
    """
    env = {**os.environ, FAULT_INJECT_ENV: stage, "PREFECT_API_URL": prefect_api_url()}
    child = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "request", "run", str(request)],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        output, _ = child.communicate(timeout=300)
    finally:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(child.args, child.returncode, output)


def versions_of(model: str) -> list[int]:
    return sorted(int(v.version) for v in MlflowClient().search_model_versions(f"name = '{model}'"))


@pytest.mark.parametrize("stage", ["unlearn", "export", "promote", "audit"])
def test_a_request_killed_at_a_stage_is_finished_by_running_it_again(world, tiny_world, tmp_path, stage):
    model = f"crash-at-{stage}"
    register_model(model, tiny_world.fresh_model(), tmp_path / "base")
    request = quick_request(tmp_path, f"req-crash-{stage}", model)

    killed = run_killed(request, stage)
    assert killed.returncode == -signal.SIGKILL, killed.stdout
    # Whatever the killed attempt got to, the alias is on the base version or on a verified, exported one.
    assert champion(model) == ("2" if stage == "audit" else "1")

    outcome = run_flow(request)
    assert outcome["status"] == "passed", outcome
    assert versions_of(model) == [1, 2], "a rerun registered a duplicate version"
    assert outcome["version_before"] == "1" and outcome["version_after"] == champion(model) == "2"
    version = MlflowClient().get_model_version(model, "2")
    assert version.tags[registry.TAG_STATUS] == "promoted" and "erasure.onnx_sha256" in version.tags

    settings = load_settings()
    ledger = chain.read_ledger(chain.ledger_path(settings, model))
    assert [entry.request_id for entry in ledger] == [f"req-crash-{stage}"], "not exactly one audit record"
    record = read_record(settings, f"req-crash-{stage}")
    assert record.attempt == 2 and record.mlflow_run_id == outcome["mlflow_run_id"]
    assert record.model.weights_sha256_after == version.tags[registry.TAG_WEIGHTS]
    report = verify_trail(settings, model=model)
    assert report.ok, [str(problem) for problem in report.problems]


@pytest.mark.parametrize("broken", ["export", "promote"])
def test_a_failure_after_registration_rejects_the_candidate_and_a_rerun_reuses_it(world, tiny_world, tmp_path, monkeypatch, broken):
    model = f"broken-{broken}"
    register_model(model, tiny_world.fresh_model(), tmp_path / "base")
    request = quick_request(tmp_path, f"req-broken-{broken}", model)

    def platform_down(*args, **kwargs):
        raise RuntimeError(f"{broken} is down")

    monkeypatch.setattr({"export": "pipelines.flow.deletion.export_and_check", "promote": "pipelines.adapters.registry.promote"}[broken], platform_down)
    failed = run_flow(request)
    assert failed["status"] == "failed" and failed["stage"] == broken, failed
    assert champion(model) == "1"
    assert MlflowClient().get_model_version(model, "2").tags[registry.TAG_STATUS] == "failed"  # the transaction's rollback

    monkeypatch.undo()
    passed = run_flow(request)
    assert passed["status"] == "passed" and passed["version_after"] == champion(model) == "2", passed
    assert versions_of(model) == [1, 2]
    report = verify_trail(load_settings(), model=model)
    assert report.ok, [str(problem) for problem in report.problems]
