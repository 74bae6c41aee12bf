"""The GPU worker image cannot be built here (no Docker engine), so it is linted instead."""

import subprocess
import sys
from pathlib import Path

from pipelines.adapters.settings import PROJECT_ROOT


def test_dockerfile_passes_hadolint():
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run([str(hadolint), str(PROJECT_ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_runs_as_non_root_with_a_healthcheck():
    text = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "USER 10001" in text and "HEALTHCHECK" in text and "requirements.lock" in text
