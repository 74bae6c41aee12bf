"""Hostile request files through the real flow: refused by name at `load request`, with an audit record;
a refused request prints its problem in one line, never a traceback."""

from __future__ import annotations

import logging

import pytest
from typer.testing import CliRunner

from pipelines.adapters.datastore import DataRevisionError
from pipelines.adapters.settings import load_settings
from pipelines.audit import read_record
from pipelines.cli import app
from pipelines.cli.request import _refusal_without_traceback
from tests.code.test_request_file import BILLION_LAUGHS
from tests.pipeline.conftest import request_file, run_flow

pytestmark = [pytest.mark.e2e]


def test_oversized_request_is_rejected_with_an_audit_record(world, tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("request_id: req-huge\nreason: " + "x" * (50 * 1024 * 1024) + "\n")
    outcome = run_flow(path)
    assert outcome["status"] == "rejected" and outcome["stage"] == "load request", outcome
    assert "larger than 1048576 bytes" in outcome["error"] and len(outcome["error"]) < 500
    record = read_record(load_settings(), outcome["request_id"])
    assert record.status == "rejected" and record.request_id.startswith("unparsed-")


def test_alias_bomb_is_rejected_with_an_audit_record(world, tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BILLION_LAUGHS)
    outcome = run_flow(path)
    assert outcome["status"] == "rejected" and outcome["stage"] == "load request", outcome
    assert "aliases" in outcome["error"]
    assert read_record(load_settings(), outcome["request_id"]).status == "rejected"


def test_a_refused_request_prints_one_line_and_no_traceback(world, tmp_path, capfd):
    path = request_file(tmp_path, "req-untracked-cli", forget__path="data/restoration/train/smog.safetensors")
    result = CliRunner().invoke(app, ["request", "run", str(path)])
    output = result.output + "".join(capfd.readouterr())
    assert result.exit_code == 1, output
    assert "Traceback" not in output, output
    assert "verdict: rejected" in output
    assert sum("stage 'pull data'" in line for line in output.splitlines()) == 1


def _record(error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:  # noqa: BLE001
        import sys

        return logging.LogRecord("prefect.task_runs", logging.ERROR, __file__, 1, "Task run failed", None, sys.exc_info())


def test_the_filter_keeps_tracebacks_for_platform_failures_only():
    refused, failed = _record(DataRevisionError("no such path")), _record(RuntimeError("disk full"))
    assert _refusal_without_traceback(refused) and _refusal_without_traceback(failed)
    assert refused.exc_info is None and refused.levelno == logging.WARNING
    assert failed.exc_info is not None and failed.levelno == logging.ERROR
