"""`erasure` starts without the heavy tools: a command group imports them on use, so `erasure --help` and the
commands that need none of them start in a fraction of a second."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "prefect", "mlflow", "great_expectations", "dvc", "onnx", "onnxruntime", "pandas", "sklearn")


def modules_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter holds after running `code`."""
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_importing_the_cli_imports_none_of_the_heavy_tools():
    assert modules_after("import pipelines.cli") & set(HEAVY) == set()


def test_the_import_check_sees_a_heavy_import():
    # Negative control: the same probe after importing a command's tool finds it.
    assert "pandas" in modules_after("import pipelines.cli\nimport pandas")


def module_file_exists(name: str) -> bool:
    """Whether `name` (a.b.c) is an installed module, found without importing anything."""
    top, *rest = name.split(".")
    spec = importlib.util.find_spec(top)
    if spec is None or not rest:
        return spec is not None
    folder = Path(spec.submodule_search_locations[0]).joinpath(*rest)
    return folder.with_suffix(".py").is_file() or (folder / "__init__.py").is_file()


def test_the_tools_request_run_imports_ahead_exist():
    # `request run` imports these while Prefect's server starts and skips a missing one silently: a renamed
    # module would quietly lose the head start.
    from pipelines.cli.request import FLOW_TOOLS

    assert [name for name in FLOW_TOOLS if not module_file_exists(name)] == []
    assert not module_file_exists("great_expectations.no_such_module")
