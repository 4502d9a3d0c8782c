"""Rerun the README's glioblastoma worked example and commit its figures (``make example-gbm``).

Copies the project into a temporary git repository the way tests/test_real_data.py
does (``tests/helpers.make_project``: examples/gbm_params.yaml merged section by
section into params.yaml), runs ``dvc repro compare`` there (ingest, validate,
preprocess, compare: the stages the example's table comes from) and copies the
comparison's metrics to ``examples/gbm_comparison.json``, with the split by patient and
the wall time under ``example``. ``make results`` then
renders the README's table from that file. Not part of ``make run``: a few minutes
of CPU on 2 cores, and its own data, params and registered model.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import make_project, run  # noqa: E402  (the tests' project copy, reused)

OUTPUT = ROOT / "examples/gbm_comparison.json"


def write_output(project: Path, *, minutes: float) -> None:
    """The run's comparison, with the split by patient and the wall time, to ``examples/``."""
    comparison = json.loads((project / "metrics/comparison.json").read_text())
    split = json.loads((project / "data/processed/summary.json").read_text())
    comparison["example"] = {
        "params": "examples/gbm_params.yaml",
        "split": {name: split[name]["samples"] for name in ("train", "val", "test")},
        "minutes": round(minutes, 1),
        "cores": os.cpu_count(),
    }
    OUTPUT.write_text(json.dumps(comparison, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary project and print its path")
    args = parser.parse_args(argv)
    example = yaml.safe_load((ROOT / "examples/gbm_params.yaml").read_text())
    workdir = Path(tempfile.mkdtemp(prefix="oncopersistnet-gbm-"))
    try:
        project = make_project(workdir / "project", example)
        # The copy's own code, not whichever checkout the interpreter has installed.
        os.environ["PYTHONPATH"] = str(project / "src")
        started = time.perf_counter()
        run(["dvc", "repro", "compare"], project, timeout=3600)
        write_output(project, minutes=(time.perf_counter() - started) / 60)
        print(f"wrote {OUTPUT.relative_to(ROOT)}; now run `make results` and commit both")
    finally:
        if args.keep:
            print(f"temporary project kept: {workdir / 'project'}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
