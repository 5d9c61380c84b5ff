"""The rooms' import contract: data < model < training < evaluation | service < cli, no cycle between modules,
and every import of our own code through the `bazkhord` namespace.

import-linter checks the layers ([tool.importlinter] in pyproject.toml) on the installed wheel: its graph
library, grimp, finds a package's modules under its folder, and the editable install maps the rooms from
elsewhere. Cycles are found on the same graph.
"""

from __future__ import annotations

import ast
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO, InstalledWheel

ROOMS = ("data", "model", "training", "evaluation", "service", "cli")
SOURCES = [p for folder in (*ROOMS, "bazkhord", "benchmarks", "tests") for p in sorted((REPO / folder).rglob("*.py"))]

LINT = textwrap.dedent(f"""
    import sys
    from importlinter.cli import lint_imports
    sys.exit(lint_imports(config_filename={str(REPO / 'pyproject.toml')!r}, no_cache=True, no_logo=True))
""")

CYCLES = textwrap.dedent("""
    import sys
    import grimp

    graph = grimp.build_graph("bazkhord", include_external_packages=False)
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []
    sys.setrecursionlimit(10_000)

    def visit(module):  # Tarjan's strongly connected components: each of more than one module is a cycle
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in graph.find_modules_directly_imported_by(module):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    print(len(graph.modules), cycles)
""")


def test_layers_contract_holds(installed_wheel: InstalledWheel) -> None:
    done = subprocess.run([str(installed_wheel.python), "-c", LINT], cwd=installed_wheel.cwd, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def test_no_import_cycles(installed_wheel: InstalledWheel) -> None:
    done = subprocess.run([str(installed_wheel.python), "-c", CYCLES], cwd=installed_wheel.cwd, capture_output=True,
                          text=True, timeout=300, check=True)
    modules, cycles = done.stdout.split(" ", 1)
    assert int(modules) > 50  # the graph saw the installed package, not an empty folder
    assert cycles.strip() == "[]", f"import cycles: {cycles}"


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in the file, inside functions and TYPE_CHECKING blocks too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_own_code_is_imported_through_the_namespace(path: Path) -> None:
    """`import data` would work from the repository root and nowhere else (and load a second copy)."""
    bare = [f"line {line}: {name}" for line, name in imported(path) if name.split(".")[0] in ROOMS]
    assert not bare, f"{path}: import bazkhord.<room>..., not the bare room: {bare}"


def test_nothing_in_the_package_imports_the_command_line() -> None:
    package = [p for p in SOURCES if p.relative_to(REPO).parts[0] in ("bazkhord", *ROOMS) and
               p.relative_to(REPO).parts[0] != "cli"]
    users = [f"{p.relative_to(REPO)}:{line}" for p in package for line, name in imported(p)
             if name == "bazkhord.cli" or name.startswith("bazkhord.cli.")]
    assert users == []
