"""Build throw-away copies of the project for tests that run stages or `dvc repro`."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = (
    "dvc.yaml",
    "params.yaml",
    ".dvcignore",
    ".gitignore",
    "pipelines",
    "src",
    ".dvc/config",
    ".dvc/.gitignore",
    "data/external",
    "models/README.md",
)

# Small enough for seconds per stage, big enough for a 3-way group split and a real model.
TINY_PARAMS: dict[str, Any] = {
    "simulate": {"n_cells": 600, "n_genes": 300, "n_samples": 6, "effect_size": 2.5, "seed": 1},
    "preprocess": {"n_top_genes": 100, "n_components": 16},
    "train": {
        "conv_channels": [4, 8],
        "lstm_hidden": 8,
        "dense_units": 8,
        "max_epochs": 8,
        "patience": 4,
        "batch_size": 64,
    },
    # 6 samples (3 per class): 3 folds is the most that tests both classes in every fold
    "compare": {"n_seeds": 1, "cv_folds": 3, "bootstrap_resamples": 200},
    "export": {"parity_cells": 64},
    "register": {"min_f1": 0.3, "min_roc_auc": 0.6},
    "explain": {"cells": 200, "steps": 16},
    "transfer": {"max_epochs": 4, "baselines": ["logistic_regression"]},
    "cross_study": {"max_cells_per_sample": 60, "k_samples": [1], "max_epochs": 6},
    "trust": {"max_cells": 400},
}


def deep_update(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``changes`` merged in, section by section."""
    base = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = deep_update(base[key], value)
        else:
            base[key] = value
    return base


def make_project(dest: Path, params: dict[str, Any] | None = None, git: bool = True) -> Path:
    """Copy the project's pipeline files into ``dest`` with ``params`` merged into params.yaml."""
    for name in PROJECT_FILES:
        src = ROOT / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, target)
    merged = deep_update(yaml.safe_load((ROOT / "params.yaml").read_text()), params or {})
    (dest / "params.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
    if git:
        run(["git", "init", "-q"], dest)
        run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "add", "-A"], dest)
        run(
            ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-qm", "project"],
            dest,
        )
    return dest


def env() -> dict[str, str]:
    """The environment stages run in: this interpreter's bin first, no network, no outside MLflow URI."""
    out = dict(os.environ)
    out["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{out.get('PATH', '')}"
    out["DVC_NO_ANALYTICS"] = "1"
    out["MLFLOW_DISABLE_TELEMETRY"] = "true"
    out.pop("MLFLOW_TRACKING_URI", None)
    return out


def run(
    cmd: list[str], cwd: Path, check: bool = True, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
        )
    return result


def stage(name: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one stage script the way DVC does."""
    return run([sys.executable, f"pipelines/{name}.py"], cwd, check=check)
