"""dvc.yaml lists, for every stage, the code the stage really runs: a code change reruns exactly its
stages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# Modules that cannot change what a stage writes: error types, log format, the stages package docstring.
EXEMPT = {
    "src/oncopersistnet/errors.py",
    "src/oncopersistnet/logging_setup.py",
    "src/oncopersistnet/stages/__init__.py",
}
PACKAGE = ROOT / "src"
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _module_file(name: str) -> Path | None:
    base = PACKAGE / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _imported_files(start: Path) -> set[Path]:
    """Every oncopersistnet source file reachable from ``start`` by import statements (also inside functions).

    A subpackage's ``__init__`` only re-exports: it is not followed into its siblings
    (``from oncopersistnet.data.load import x`` counts data/load.py, not data/readers.py).
    """
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                if name.split(".")[0] != "oncopersistnet":
                    continue
                found = _module_file(name)
                if found is not None and found.name != "__init__.py":
                    todo.append(found)
                elif (
                    found is not None and name != "oncopersistnet"
                ):  # `from pkg import name`: the modules it names
                    seen.add(found)
    return {p for p in seen if p.is_relative_to(PACKAGE)}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_imported_module_is_a_dependency(stage):
    deps = [ROOT / d for d in STAGES[stage]["deps"]]
    script = ROOT / "pipelines" / f"{stage}.py"
    assert script in deps
    missing = sorted(
        str(f.relative_to(ROOT))
        for f in _imported_files(script)
        if str(f.relative_to(ROOT)) not in EXEMPT
        and f.name != "__init__.py"
        and not any(f == d or f.is_relative_to(d) for d in deps)
    )
    assert not missing, f"stage {stage} runs {missing} but dvc.yaml does not list them as deps"


# Written by the stages but differing per clone, MLflow store or clock (run ids, registry versions,
# the git commit, the time of the run): dvc.lock hashes no such file, so a fresh clone's `dvc repro`
# leaves it as committed.
STORE_DEPENDENT_FILES = {
    "models/mlflow_run.json",
    "models/registry.json",
    "models/transfer_registration.json",
    "reports/validation_docs",
}


def _paths(entries: list) -> set[str]:
    return {entry if isinstance(entry, str) else next(iter(entry)) for entry in entries}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_no_store_dependent_file_is_an_output_or_a_dependency(stage):
    spec = STAGES[stage]
    hashed = _paths(spec["deps"]) | _paths(spec.get("outs", [])) | _paths(spec.get("metrics", []))
    assert not hashed & STORE_DEPENDENT_FILES


def test_the_store_dependent_files_are_the_ones_the_code_writes():
    from oncopersistnet.paths import ProjectPaths

    paths = ProjectPaths(ROOT)
    written = {paths.run_reference, paths.registry, paths.transfer_record, paths.validation_docs}
    assert {str(p.relative_to(ROOT)) for p in written} == STORE_DEPENDENT_FILES


def _outputs(stage: dict) -> list[str]:
    """Every path the stage declares as an output, metric or plot."""
    paths = []
    for kind in ("outs", "metrics", "plots"):
        for entry in stage.get(kind, []):
            paths.append(next(iter(entry)) if isinstance(entry, dict) else entry)
    return paths


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_fresh_clone_reruns_every_stage(name):
    """Every stage logs to the clone's own MLflow store (and register publishes into it). A stage
    whose outputs are all committed to git, with unchanged deps, is skipped by `dvc repro` in a
    fresh clone, leaving that store without its runs or its registered model: each stage needs an
    output git ignores (absent from a clone until the stage runs)."""
    import subprocess

    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *_outputs(STAGES[name])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert ignored, f"stage {name}: every output is committed to git ({_outputs(STAGES[name])})"
