"""The onboarding walk-through of an example package (examples/*/README.md), run as written.

Each example's README holds one shell block: build the team's data repository, train and log its model with
its own code, adopt it, file a request, review, serve. A test module runs that block in a state directory of
its own and then reads what it left (the MLflow store, the data repository) in-process.
"""

from __future__ import annotations

import ast
import hashlib
import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow

from pipelines.adapters.settings import PROJECT_ROOT
from tests.pipeline.conftest import prefect_api_url

WALKTHROUGH_TIMEOUT = 900  # seconds; the walk-through takes ~60-110 s on one idle core (data, training, a flow, a server)


def erasure_sources() -> dict[str, str]:
    """sha256 of every file under pipelines/ and unlearning/: what a user's onboarding must not change."""
    return {str(path.relative_to(PROJECT_ROOT)): hashlib.sha256(path.read_bytes()).hexdigest()
            for root in ("pipelines", "unlearning") for path in sorted((PROJECT_ROOT / root).rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts}


def git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, check=True).stdout


def readme_block(example: Path) -> str:
    """The README's shell block, less its `pip install` line (make setup installed the package)."""
    text = (example / "README.md").read_text()
    block = text[text.index("```bash\n") + len("```bash\n"):]
    block = block[: block.index("```")]
    return "\n".join(line for line in block.splitlines() if not line.startswith("pip install"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Walkthrough:
    home: Path
    result: subprocess.CompletedProcess
    sources_before: dict[str, str]
    sources_after: dict[str, str]
    tree_before: str
    tree_after: str

    @property
    def output(self) -> str:
        """stdout and stderr, whitespace collapsed (rich wraps long lines)."""
        return " ".join((self.result.stdout + self.result.stderr).split())


@contextmanager
def walked_through(example: Path, home: Path, data_repo: str) -> Iterator[Walkthrough]:
    """Run `example`'s README block with ERASURE_HOME=`home` and a free PORT; within the block, this process
    reads that MLflow store and the data repository `home/data_repo`; afterwards, its own again."""
    sources_before, tree_before = erasure_sources(), git_status()
    # The worker's Prefect server, already running: each `erasure request run` would otherwise start a temporary
    # one (~15 s of the walk-through's ~70 s); the flow is the same either way (STACK.md, Prefect).
    env = {**os.environ, "ERASURE_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db",
           "PORT": str(free_port()), "COLUMNS": "200", "PREFECT_API_URL": prefect_api_url()}
    env.pop("ERASURE_DATA_REPO", None)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_block(example)], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=WALKTHROUGH_TIMEOUT)
    saved = {key: os.environ.get(key) for key in ("ERASURE_HOME", "MLFLOW_TRACKING_URI", "ERASURE_DATA_REPO")}
    os.environ.update(ERASURE_HOME=str(home), MLFLOW_TRACKING_URI=f"sqlite:///{home}/mlflow.db",
                      ERASURE_DATA_REPO=str(home / data_repo))
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    try:
        yield Walkthrough(home, result, sources_before, erasure_sources(), tree_before, git_status())
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])


def plugin_surface_violations(package: Path) -> list[str]:
    """Imports of Erasure in `package` other than its plug-in surface (docs/plugins.md)."""
    surface = {"unlearning.plugin_api", "pipelines.plugin_api"}
    found = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            found += [f"{path.name}: {name}" for name in names
                      if name.split(".")[0] in {"unlearning", "pipelines"} and name not in surface]
    return found
