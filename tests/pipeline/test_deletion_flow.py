"""The real deletion flow end to end on the tiny world: MLflow (sqlite), Prefect (ephemeral), DVC
(local remote), Great Expectations and onnxruntime, none of them mocked."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from pipelines.adapters import registry
from pipelines.adapters.settings import load_settings
from pipelines.audit import read_record
from tests.conftest import commit_data
from tests.pipeline.conftest import MODEL, champion, prefect_api_url, request_file, run_flow
from unlearning.data.pairs import decode_arrays, encode_arrays
from unlearning.data.restoration import set_path

pytestmark = [pytest.mark.e2e]

def test_passing_request_promotes_a_verified_exported_version(world, tmp_path):
    before = champion()
    outcome = run_flow(request_file(tmp_path, "req-pass"))
    assert outcome["status"] == "passed", outcome
    after = champion()
    assert int(after) == int(before) + 1 and outcome["version_after"] == after

    client = MlflowClient()
    new, old = client.get_model_version(MODEL, after), client.get_model_version(MODEL, before)
    assert new.tags[registry.TAG_PARENT] == before and new.tags[registry.TAG_REQUEST] == "req-pass"
    assert new.tags[registry.TAG_STATUS] == "promoted"
    assert '"key_fingerprint":"sha256:' in new.tags["erasure.model_signature"]  # OpenSSF model.sig (issue 19 §7)
    assert old.tags[registry.TAG_CHILD] == after and old.tags[registry.TAG_STATUS] == "superseded"

    record = read_record(load_settings(), "req-pass")
    assert record.status == "passed" and record.model.promoted
    assert record.model.weights_sha256_after == new.tags[registry.TAG_WEIGHTS]
    assert record.model.weights_sha256_before == old.tags[registry.TAG_WEIGHTS]
    assert record.export["parity_passed"] and record.export["max_abs_diff"] <= 1e-4
    assert record.export["onnx_sha256"] == new.tags["erasure.onnx_sha256"]
    assert record.forget_data["examples"] == 128 and len(record.forget_data["dvc_md5"]) == 32
    assert record.validation["success"]
    checks = {m.name: m for m in record.metrics if m.threshold is not None}
    assert checks["forget.haze.psnr_gain_over_input_db"].passed


def test_a_method_that_needs_no_retain_data_runs_with_evaluation_sets_only(world, tmp_path):
    """Issue 20 §1: `retain.paths` omitted is valid for a method that declares it needs none; the record says
    that no retain data was read. Bounded ascent as the forget objective: on this tiny plain U-Net it reaches
    the do-nothing output, the default target settles short of it (tests/model/test_no_retain.py). (Seeds 0-2
    of the tiny world, 60 steps: haze gain over the input -0.52..-0.20 dB, kept drops <= 0.5 dB on seed 1 and
    negative on 0 and 2; this is seed 0.)"""
    evaluation = ["data/restoration/eval/noise.safetensors", "data/restoration/eval/rain.safetensors"]
    params = {"steps": 60, "learning_rate": 3e-4, "forget_objective": "bounded_ascent"}
    outcome = run_flow(request_file(tmp_path, "req-no-retain", retain={"evaluation": evaluation},
                                    method={"name": "synthetic_teacher", "params": params}))
    assert outcome["status"] == "passed", outcome
    record = read_record(load_settings(), "req-no-retain")
    assert record.retain_data == [] and record.unlearning["retain_examples"] == 0
    assert record.unlearning["retain_data_used"] is False and record.unlearning["needs_retain"] is False


def test_promoted_version_loads_back_with_matching_hash(world):
    loaded = registry.load_by_alias(load_settings(), MODEL, "champion")
    assert loaded.version == champion()


def test_unmeetable_thresholds_are_rejected_and_the_alias_stays(world, tmp_path):
    from pipelines.cli import app

    before = champion()
    path = request_file(tmp_path, "req-impossible", thresholds={"forget_max_gain_db": -5.0, "retain_max_drop_db": 0.3})
    result = CliRunner().invoke(app, ["request", "run", str(path)])
    assert result.exit_code == 1
    assert "verdict: rejected" in result.output
    assert champion() == before
    record = read_record(load_settings(), "req-impossible")
    assert record.status == "rejected" and record.failed_stage == "verify"
    assert record.model.version_after is None and not record.model.promoted
    assert "forget.haze.psnr_gain_over_input_db" in record.error


def test_corrupt_forget_file_is_rejected_naming_the_file(world, tmp_path):
    rev = commit_data(world, {"restoration/train/haze-corrupt.safetensors": b"\x00garbage" * 50}, "corrupt")
    before = champion()
    outcome = run_flow(request_file(tmp_path, "req-corrupt", forget__path="data/restoration/train/haze-corrupt.safetensors", forget__rev=rev))
    assert outcome["status"] == "rejected" and outcome["stage"] == "pull data"
    assert "haze-corrupt.safetensors" in outcome["error"] and "not a readable safetensors" in outcome["error"]
    assert champion() == before


def test_forget_set_with_duplicates_and_nan_names_the_expectations(world, tiny_world, tmp_path):
    arrays, _ = decode_arrays(tiny_world.files[set_path("train", "haze")], "haze")
    inputs = np.concatenate([arrays["inputs"], arrays["inputs"][:4]]).astype(np.float32)
    inputs[0, 0, 0, 0] = np.nan
    targets = np.concatenate([arrays["targets"], arrays["targets"][:4]])
    raw = encode_arrays({"inputs": inputs, "targets": targets}, {"task": "restoration"})
    rev = commit_data(world, {"restoration/train/haze-broken.safetensors": raw}, "broken")
    outcome = run_flow(request_file(tmp_path, "req-broken", forget__path="data/restoration/train/haze-broken.safetensors", forget__rev=rev))
    assert outcome["status"] == "rejected" and outcome["stage"] == "validate"
    assert "expect_column_values_to_be_unique" in outcome["error"]
    assert "nonfinite_count" in outcome["error"]


def test_unknown_model_is_rejected_naming_it(world, tmp_path):
    outcome = run_flow(request_file(tmp_path, "req-nomodel", model="nobody@champion"))
    assert outcome["status"] == "rejected" and outcome["stage"] == "pull model"
    assert "nobody@champion" in outcome["error"]


def test_missing_data_revision_is_rejected_naming_it(world, tmp_path):
    outcome = run_flow(request_file(tmp_path, "req-norev", forget__rev="no-such-branch"))
    assert outcome["status"] == "rejected" and outcome["stage"] == "pull data"
    assert "no-such-branch" in outcome["error"]


def test_malformed_request_still_leaves_an_audit_record(world, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("request_id: req-malformed\nmodel: restorer\n")
    outcome = run_flow(path)
    assert outcome["status"] == "rejected" and outcome["stage"] == "load request"
    assert "model" in outcome["error"]
    assert read_record(load_settings(), "req-malformed").status == "rejected"


def test_no_forget_sample_bytes_anywhere_in_the_stores(world, tiny_world, tmp_path):
    """Privacy: after a promoted request (and any run before it), no forget example's bytes appear in
    MLflow, Prefect or audit files."""
    # Its own request, so the scan has something to find whichever tests ran before it on this worker.
    assert run_flow(request_file(tmp_path, "req-privacy-scan"))["status"] == "passed"
    arrays, _ = decode_arrays(tiny_world.files[set_path("train", "haze")], "haze")
    needles = [np.ascontiguousarray(arrays["inputs"][i]).tobytes() for i in range(0, 128, 16)]
    home = Path(os.environ["ERASURE_HOME"])
    scanned = 0
    for path in home.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            scanned += 1
            assert not any(needle in content for needle in needles), f"forget data found in {path}"
    assert scanned > 10


def test_audit_cli_lists_and_shows_records(world, tmp_path):
    from pipelines.cli import app

    # Its own record (a request refused at once), whichever tests ran before it on this worker.
    (tmp_path / "listed.yaml").write_text("request_id: req-cli-listed\nmodel: restorer\n")
    assert run_flow(tmp_path / "listed.yaml")["status"] == "rejected"
    listing = CliRunner().invoke(app, ["audit", "list"])
    assert listing.exit_code == 0 and "req-cli-listed" in listing.output, listing.output
    shown = CliRunner().invoke(app, ["audit", "show", "req-cli-listed"])
    assert shown.exit_code == 0 and '"status": "rejected"' in shown.output
    missing = CliRunner().invoke(app, ["audit", "show", "req-never-seen"])
    assert missing.exit_code == 2


def test_mlflow_project_entry_point_runs_a_request(world, tmp_path):
    import subprocess
    import sys

    from pipelines.adapters.settings import PROJECT_ROOT

    path = request_file(tmp_path, "req-mlproject")
    # The worker's Prefect server: the `erasure` child then pays for no ephemeral server start of its own.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PREFECT_API_URL": prefect_api_url()}
    result = subprocess.run(
        [sys.executable, "-m", "mlflow", "run", str(PROJECT_ROOT / "mlflow_project"), "-e", "delete",
         "--env-manager", "local", "-P", f"request={path}"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert read_record(load_settings(), "req-mlproject").status == "passed"
