"""`unlearning/` stays a plain PyTorch library: importing it pulls in no MLOps tool."""

import subprocess
import sys

from pipelines.adapters.settings import PROJECT_ROOT


def test_unlearning_imports_no_mlops_tool():
    probe = (
        "import sys, unlearning.methods, unlearning.verify, unlearning.train, unlearning.data.restoration;"
        "print(','.join(m for m in ('mlflow', 'prefect', 'dvc', 'great_expectations') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=PROJECT_ROOT, check=True)
    assert result.stdout.strip() == ""
