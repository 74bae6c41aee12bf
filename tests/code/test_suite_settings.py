"""The suite's own speed settings (issue 11): one torch thread, the slowest tests printed, wide timeouts."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib

import torch

from pipelines.adapters.settings import PROJECT_ROOT


def test_torch_runs_one_thread_in_tests_and_in_their_children():
    assert torch.get_num_threads() == 1
    probe = "import torch; print(torch.get_num_threads())"
    child = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=os.environ)
    assert child.stdout.strip() == "1"


def test_every_run_prints_the_15_slowest_tests():
    options = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--durations=15" in options["addopts"].split()


def test_the_dask_batch_timeout_has_three_times_its_measured_idle_time():
    # Read from the source: importing the module would start nothing, but it needs the production extras.
    source = (PROJECT_ROOT / "tests" / "integration" / "test_servers.py").read_text()
    tree = ast.parse(source)
    constants = {
        node.targets[0].id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    idle = ast.literal_eval(constants["BATCH_MEASURED_IDLE_S"])
    timeout = eval(compile(ast.Expression(constants["BATCH_TIMEOUT_S"]), "timeout", "eval"), {"BATCH_MEASURED_IDLE_S": idle})
    assert timeout >= 3 * idle
    assert 'cli("request", "batch"' in source and "timeout=BATCH_TIMEOUT_S" in source
