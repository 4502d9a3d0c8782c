"""Every file dvc.lock hashes is the same in two clones with different git commits and MLflow stores.

Issue 15: a fresh clone's `make run` must leave `dvc.lock` as committed. Run ids, registry version
numbers, the git commit and the clock differ per clone; the stages keep them out of their DVC
outputs (the exported ONNX, ``models/register.json``) and write them to undeclared, git-ignored
files (``models/mlflow_run.json``, ``models/registry.json``) or onto the registered copy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import TINY_PARAMS, deep_update, make_project, run, stage

pytestmark = pytest.mark.slow

PARAMS = deep_update(TINY_PARAMS, {"compare": {"models": ["cnn_lstm"], "cv_folds": 0, "n_seeds": 1}})
COMPARED = ("train", "export", "register")  # the stages that talk to the MLflow store and read git
GIT = ["git", "-c", "user.name=other", "-c", "user.email=other@example.com"]


def _declared(project: Path, names: tuple[str, ...]) -> list[Path]:
    """Every file the stages ``names`` declare as outs or metrics (a folder: every file in it)."""
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    entries = [e for n in names for kind in ("outs", "metrics") for e in stages[n].get(kind, [])]
    found = []
    for entry in entries:
        path = project / (entry if isinstance(entry, str) else next(iter(entry)))
        found += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [p.relative_to(project) for p in found]


def test_declared_outputs_are_the_same_bytes_in_another_clone_and_store(tmp_path):
    first = make_project(tmp_path / "first", PARAMS)
    for name in ("ingest", "validate", "preprocess", "train", "evaluate", "compare", "export", "register"):
        stage(name, first)

    second = make_project(tmp_path / "second", PARAMS)
    (second / "NOTES.md").write_text("another commit\n")
    run([*GIT, "add", "NOTES.md"], second)
    run([*GIT, "commit", "-qm", "another commit"], second)
    for folder in ("data", "metrics"):  # the earlier stages' outputs, as `dvc pull` would bring them
        shutil.copytree(first / folder, second / folder, dirs_exist_ok=True)
    shutil.copy2(first / "models/preprocessor.npz", second / "models/preprocessor.npz")
    for name in ("train", "export", "register", "register"):  # a second version: v2, judged against v1
        stage(name, second)

    # what differs per clone and store does differ (else the comparison below would prove nothing)
    runs = [json.loads((p / "models/mlflow_run.json").read_text()) for p in (first, second)]
    assert runs[0]["run_id"] != runs[1]["run_id"] and runs[0]["git_commit"] != runs[1]["git_commit"]
    versions = [json.loads((p / "models/registry.json").read_text())["version"] for p in (first, second)]
    assert versions == ["1", "2"]

    declared = _declared(first, COMPARED)
    assert {"models/model.pt", "models/oncopersistnet.onnx", "models/register.json"} <= set(
        map(str, declared)
    )
    assert declared == _declared(second, COMPARED)
    differing = [str(p) for p in declared if (first / p).read_bytes() != (second / p).read_bytes()]
    assert not differing, f"DVC outputs that depend on the clone or the MLflow store: {differing}"
