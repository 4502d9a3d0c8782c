"""ARCHITECTURE.md is the map, and the code follows it.

The layer table in ARCHITECTURE.md is read here and enforced on every import of
the package, function-local ones included (they hide edges otherwise): a module
imports only modules of its own layer or below, the import graph has no cycle,
only a stage's pipeline script imports a stage module, and functions fit on a
screen unless their docstring says why not.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "oncopersistnet"
MAX_FUNCTION_LINES = 80
# A longer function says why in its docstring, e.g. "Long because: one table of 40 CLI options."
LONG_REASON = "Long because"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layers() -> dict[str, int]:
    """Module prefix -> layer number, from the rows of ARCHITECTURE.md's layer table."""
    table: dict[str, int] = {}
    for line in (ROOT / "ARCHITECTURE.md").read_text().splitlines():
        row = re.match(r"\|\s*(\d+)\s*\|", line)
        if row:
            for name in re.findall(r"`(oncopersistnet[\w.]*)`", line):
                table[name] = int(row.group(1))
    return table


LAYERS = layers()


def layer_of(module: str) -> int | None:
    """The layer of the longest table prefix that names ``module`` or a package above it."""
    name = module
    while name:
        if name in LAYERS:
            return LAYERS[name]
        name = name.rpartition(".")[0]
    return None


def resolve(name: str) -> str | None:
    """The package module an imported name lives in (``a.b.func`` -> ``a.b``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(path: Path) -> Iterator[tuple[str, int]]:
    """``(module, line)`` of every import of the package in ``path``, at any depth."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            target = resolve(name) if name.startswith("oncopersistnet") else None
            if target is not None:
                yield target, node.lineno


def graph() -> dict[str, set[str]]:
    """Module -> modules it imports. A package ``__init__`` that re-exports its children is its own node."""
    edges: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        edges[module] = {target for target, _ in imports(path) if target != module}
    return edges


def test_every_module_is_on_the_map():
    unmapped = [m for m in MODULES if layer_of(m) is None]
    assert not unmapped, f"add these modules to the layer table in ARCHITECTURE.md: {unmapped}"


def test_the_map_names_only_modules_that_exist():
    stale = [name for name in LAYERS if name not in MODULES]
    assert not stale, f"ARCHITECTURE.md names modules that no longer exist: {stale}"


def test_no_module_imports_a_higher_layer():
    upward = [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)}), line {line}"
        for module, path in MODULES.items()
        for target, line in imports(path)
        if target != module
        and (layer_of(target) or 0) > (layer_of(module) or 0)
        # a package __init__ re-exports its own children
        and not (path.name == "__init__.py" and target.startswith(module + "."))
    ]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_import_graph_has_no_cycle():
    edges = graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            # a package __init__ importing its children, and a child importing a sibling
            # through it, is one unit
            if nxt.startswith(node + ".") and MODULES[node].name == "__init__.py":
                continue
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_only_its_pipeline_script_imports_a_stage():
    """Stages only orchestrate: the library never imports them, and each script runs exactly one."""
    offenders = [
        f"{module} imports {target}"
        for module, path in MODULES.items()
        if not module.startswith("oncopersistnet.stages")
        for target, _ in imports(path)
        if target.startswith("oncopersistnet.stages")
    ]
    offenders += [
        f"{module} imports {target}"
        for module, path in MODULES.items()
        if module.startswith("oncopersistnet.stages.")
        for target, _ in imports(path)
        if target.startswith("oncopersistnet.stages.") and target != "oncopersistnet.stages.common"
    ]
    offenders += [
        f"benchmarks/{bench.name} imports {target}"
        for bench in sorted((ROOT / "benchmarks").glob("*.py"))
        for target, _ in imports(bench)
        if target.startswith("oncopersistnet.stages")
    ]
    for script in sorted((ROOT / "pipelines").glob("*.py")):
        stages = {t for t, _ in imports(script) if t.startswith("oncopersistnet.stages.")}
        expected = {f"oncopersistnet.stages.{script.stem}", "oncopersistnet.stages.common"}
        if not stages <= expected or f"oncopersistnet.stages.{script.stem}" not in stages:
            offenders.append(f"pipelines/{script.name} imports {sorted(stages)}")
    assert not offenders, "\n".join(offenders)


def _functions() -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield f"{module}.{node.name}", node


def test_functions_fit_on_a_screen():
    too_long = [
        f"{name}: {node.end_lineno - node.lineno + 1} lines"
        for name, node in _functions()
        if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
        and LONG_REASON not in (ast.get_docstring(node) or "")
    ]
    assert not too_long, (
        f"over {MAX_FUNCTION_LINES} lines with no '{LONG_REASON}' in the docstring: {too_long}"
    )


@pytest.mark.parametrize("entry", ["oncopersistnet.cli"])
def test_function_local_project_imports_only_in_entry_points(entry):
    """Only the CLI imports the project lazily (its subcommands load torch or MLflow; `--help` should not)."""
    hidden = []
    for module, path in MODULES.items():
        if module == entry:
            continue
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(func):
                    if isinstance(node, (ast.Import, ast.ImportFrom)):
                        names = (
                            [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                        )
                        # a package __init__'s lazy re-export (PEP 562 __getattr__) of its own children
                        # is the same edge as a top-level re-export, which the layer rules allow
                        if path.name == "__init__.py" and func.name == "__getattr__":
                            names = [n for n in names if not str(n).startswith(module + ".")]
                        if any(str(n).startswith("oncopersistnet") for n in names):
                            hidden.append(f"{module}.{func.name}, line {node.lineno}")
    assert not hidden, f"function-local imports of the project: {sorted(set(hidden))}"
