"""`pipelines/` has no import cycle: every import counts, also those inside functions and under TYPE_CHECKING.

A cycle is how a layer starts depending on the layer above it (the request schema on the kinds that
declare its parts, say); the graph is read from the source, so a lazy import does not hide one.
"""

import ast
from pathlib import Path

import networkx

from pipelines.adapters.settings import PROJECT_ROOT

PIPELINES = PROJECT_ROOT / "pipelines"


def module_name(path: Path, project_root: Path) -> str:
    parts = path.relative_to(project_root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, project_root: Path = PROJECT_ROOT) -> networkx.DiGraph:
    """module -> the modules of `root` it names in an import (`from pkg import module` names the module)."""
    modules = {module_name(path, project_root): path for path in root.rglob("*.py")}
    graph = networkx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
                targets = submodules if len(submodules) == len(node.names) else [base, *submodules]
            else:
                continue
            graph.add_edges_from((name, target) for target in targets if target in modules and target != name)
    return graph


def test_pipelines_has_no_import_cycle():
    cycles = sorted(sorted(component) for component in networkx.strongly_connected_components(import_graph(PIPELINES))
                    if len(component) > 1)
    assert cycles == [], f"import cycles in pipelines/: {cycles}"


def test_the_cycle_check_finds_a_cycle(tmp_path):
    # Negative control: two modules that import each other, one of them only inside a function.
    package = tmp_path / "pipelines"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "request.py").write_text("from pipelines.kinds import Kind\n")
    (package / "kinds.py").write_text("def load():\n    from pipelines import request\n")
    components = networkx.strongly_connected_components(import_graph(package, tmp_path))
    assert {"pipelines.request", "pipelines.kinds"} in [set(component) for component in components]


LONG_MODULE_LINES = 350  # beyond this a module says, in its docstring, why it is one file ("on purpose")
CLI_MODULE_LINES = 260


def test_a_long_module_says_in_its_docstring_why_it_is_one_file():
    unexplained = [
        str(path.relative_to(PROJECT_ROOT)) for path in PIPELINES.rglob("*.py")
        if len(path.read_text().splitlines()) > LONG_MODULE_LINES
        and "on purpose" not in (ast.get_docstring(ast.parse(path.read_text())) or "")
    ]
    assert unexplained == []


def test_the_cli_is_one_small_module_per_command_group():
    sizes = {path.name: len(path.read_text().splitlines()) for path in (PIPELINES / "cli").glob("*.py")}
    assert {"request.py", "audit.py", "data.py", "model.py", "servers.py"} <= set(sizes)
    assert max(sizes.values()) <= CLI_MODULE_LINES, sizes


def test_every_subpackage_says_what_it_holds():
    for init in PIPELINES.rglob("__init__.py"):
        assert len(ast.get_docstring(ast.parse(init.read_text())) or "") > 80, f"{init}: a paragraph on its role"
