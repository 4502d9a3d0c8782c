"""Time of a `dvc repro` that has nothing to do, and of `dvc status`.

A user's first command after a pull is often `dvc repro`; when nothing changed it
should answer fast. Run after `make run` (`make bench` does), so every stage is
up to date; each command runs ``--repeats`` times and the median and best are
kept. Figures go to benchmarks/results/dvc.json. Measurements, not assertions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time

from oncopersistnet.atomic import write_json


def _timed(command: list[str], repeats: int) -> dict[str, float]:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
        if command[1] == "repro" and "Running stage" in done.stdout:
            raise SystemExit("dvc repro ran a stage: run `make run` first so the pipeline is up to date")
    return {
        "median_s": round(statistics.median(seconds), 2),
        "best_s": round(min(seconds), 2),
        "repeats": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default="benchmarks/results/dvc.json")
    args = parser.parse_args()
    status = subprocess.run(["dvc", "status", "--quiet"], capture_output=True, text=True)
    if (
        status.returncode != 0
    ):  # a changed stage: `dvc repro` would rebuild (and register) instead of measuring
        raise SystemExit("the pipeline is not up to date (dvc status): run `make run` first")
    results = {
        "dvc_repro_noop": _timed(["dvc", "repro"], args.repeats),
        "dvc_status": _timed(["dvc", "status"], args.repeats),
    }
    write_json(args.output, results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
