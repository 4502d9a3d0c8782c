"""Throughput and peak memory of `oncopersistnet predict` through onnxruntime.

Measures, on the model the pipeline exported (models/oncopersistnet.onnx):
cells/s of the bare session at several batch sizes, and wall time, cells/s and
peak RSS of the whole `oncopersistnet predict` command (its own process: backed
.h5ad -> chunks -> CSV) on a generated input of 1,000,000 cells by default. The
input is built on disk: cells simulated once (a new seed of the training world)
are appended chunk by chunk to a CSR ``X`` until the file holds ``--cells``
cells, so neither this process nor the simulator holds the whole matrix.
Run with `make bench` after `make run`. Figures are printed as a table and
written to benchmarks/results/predict.json; they are measurements, not assertions.

``--parallel N`` (default 2) then runs N ``oncopersistnet predict`` processes on
the same file at once (``--threads`` 1 each, so N processes share the cores as
N users would) and records each one's wall time and peak RSS, with the memory
the machine had available before they started: what two users scoring a
1,000,000-cell file at the same time on a 2-core machine need. ``--parallel 1``
skips it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from oncopersistnet.atomic import write_json
from oncopersistnet.config import load_params
from oncopersistnet.inference import OnnxPersisterModel
from oncopersistnet.logging_setup import configure_logging


def _session_throughput(model: OnnxPersisterModel, batch_sizes: list[int], repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    out = {}
    for batch in batch_sizes:
        counts = rng.poisson(1.0, (batch, len(model.genes))).astype(np.float32)
        model.predict_proba(counts)  # warm-up
        started = time.perf_counter()
        for _ in range(repeats):
            model.predict_proba(counts)
        out[str(batch)] = batch * repeats / (time.perf_counter() - started)
    return out


def _repeat_to(simulated: Path, target: Path, n_cells: int) -> None:
    """Write ``target`` with ``n_cells`` cells: the simulated ones repeated, appended on disk."""
    import anndata as ad
    import h5py
    import pandas as pd
    from anndata.io import sparse_dataset, write_elem

    base = ad.read_h5ad(simulated)
    matrix = base.X.tocsr()
    obs = pd.DataFrame(
        {"sample": pd.Categorical(np.asarray(base.obs["sample"])[np.arange(n_cells) % base.n_obs])},
        index=[f"cell{i:07d}" for i in range(n_cells)],
    )
    with h5py.File(target, "w") as store:
        write_elem(store, "obs", obs)
        write_elem(store, "var", base.var)
        written = min(base.n_obs, n_cells)
        write_elem(store, "X", matrix[:written])
        X = sparse_dataset(store["X"])
        while written < n_cells:
            take = min(base.n_obs, n_cells - written)
            X.append(matrix[:take])
            written += take
        store.attrs["encoding-type"], store.attrs["encoding-version"] = "anndata", "0.1.0"


def _available_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return -1


def _run_predicts(commands: list[list[str]]) -> list[dict[str, float]]:
    """Start every command at once; each one's wall time and peak RSS (its own, from wait4)."""
    started = time.perf_counter()
    children = {
        subprocess.Popen(command, stdout=subprocess.DEVNULL).pid: i for i, command in enumerate(commands)
    }
    out: list[dict[str, float]] = [{} for _ in commands]
    failed = []
    while children:
        pid, status, usage = os.wait4(-1, 0)  # only these children are running
        if pid not in children:
            continue
        i = children.pop(pid)
        if os.waitstatus_to_exitcode(status) != 0:
            failed.append(i)
        out[i] = {
            "seconds_including_start_up": round(time.perf_counter() - started, 2),
            "peak_rss_mib": round(usage.ru_maxrss / 1024),
        }
    if failed:
        raise SystemExit(f"predict failed in process(es) {failed}")
    return out


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/oncopersistnet.onnx")
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument(
        "--simulated-cells", type=int, default=50_000, help="distinct simulated cells, repeated to --cells"
    )
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--parallel",
        type=int,
        default=2,
        help="then N predict processes at once, --threads // N threads each (1: skip)",
    )
    parser.add_argument("--output", default="benchmarks/results/predict.json")
    return parser.parse_args()


def _simulate(output: Path, *, cells: int, genes: int, seed: int) -> None:
    """Simulate in another process too, so this one stays small: a forked child
    starts out counting its parent's resident pages in its peak RSS."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "oncopersistnet.cli",
            "--log-level",
            "WARNING",
            "simulate",
            "--output",
            str(output),
            "--cells",
            str(cells),
            "--genes",
            str(genes),
            "--seed",
            str(seed),
        ],
        check=True,
    )


def _predict_command(args: argparse.Namespace, source: Path, output: Path, *, threads: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "oncopersistnet.cli",
        "--log-level",
        "WARNING",
        "predict",
        "--input",
        str(source),
        "--output",
        str(output),
        "--model",
        args.model,
        "--chunk-size",
        str(args.chunk_size),
        "--threads",
        str(threads),
        "--no-progress",
    ]


def _parallel_predicts(args: argparse.Namespace, source: Path, tmp: str) -> dict:
    """``--parallel`` processes on the same file at once, with the memory available before they started."""
    threads_each = max(1, args.threads // args.parallel)
    available = _available_mib()
    runs = _run_predicts(
        [
            _predict_command(args, source, Path(tmp) / f"out{i}.csv", threads=threads_each)
            for i in range(args.parallel)
        ]
    )
    return {
        "processes": args.parallel,
        "threads_each": threads_each,
        "available_memory_before_mib": available,
        "runs": runs,
        "seconds_until_all_done": max(r["seconds_including_start_up"] for r in runs),
        "cells_per_s_all_together": round(
            args.parallel * args.cells / max(r["seconds_including_start_up"] for r in runs)
        ),
    }


def main() -> None:
    args = _parse_args()
    configure_logging("WARNING")

    model = OnnxPersisterModel(args.model, threads=args.threads)
    session = _session_throughput(model, [1, 256, 4096], repeats=20)
    params = load_params()
    n_genes = len(model.genes)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "cells.h5ad"
        simulated = Path(tmp) / "simulated.h5ad"
        _simulate(
            simulated,
            cells=min(args.simulated_cells, args.cells),
            genes=n_genes,
            seed=params.simulate.seed + 1,
        )
        _repeat_to(simulated, source, args.cells)
        simulated.unlink()
        del model  # measure the predict command alone, in its own process

        single = _run_predicts([_predict_command(args, source, Path(tmp) / "out.csv", threads=args.threads)])[
            0
        ]
        parallel = _parallel_predicts(args, source, tmp) if args.parallel > 1 else None
    elapsed = single["seconds_including_start_up"]
    results = {
        "model_genes": n_genes,
        "threads": args.threads,
        "cpu_cores": os.cpu_count(),
        "session_cells_per_s_by_batch": {k: round(v) for k, v in session.items()},
        "predict_file": {
            "cells": args.cells,
            "chunk_size": args.chunk_size,
            "seconds_including_start_up": round(elapsed, 2),
            "cells_per_s": round(args.cells / elapsed),
        },
        "predict_peak_rss_mib": single["peak_rss_mib"],
    }
    if parallel:
        results["predict_parallel"] = parallel
    write_json(args.output, results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
