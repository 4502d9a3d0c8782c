"""Throughput and peak memory of `oncopersistnet predict` through onnxruntime.

Measures, on the model the pipeline exported (models/oncopersistnet.onnx):
cells/s of the bare session at several batch sizes, and wall time, cells/s and
peak RSS of the whole `oncopersistnet predict` command (its own process: backed
.h5ad -> chunks -> CSV) on a generated input of 1,000,000 cells by default. The
input is built on disk: cells simulated once (a new seed of the training world)
are appended chunk by chunk to a CSR ``X`` until the file holds ``--cells``
cells, so neither this process nor the simulator holds the whole matrix. Run with `make bench` after `make run`. Figures are printed as
a table and written to benchmarks/results/predict.json; they are measurements,
not assertions.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/oncopersistnet.onnx")
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--simulated-cells", type=int, default=50_000, help="distinct simulated cells, repeated to --cells")
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default="benchmarks/results/predict.json")
    args = parser.parse_args()
    configure_logging("WARNING")

    model = OnnxPersisterModel(args.model, threads=args.threads)
    session = _session_throughput(model, [1, 256, 4096], repeats=20)
    params = load_params()
    n_genes = len(model.genes)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "cells.h5ad"
        # Simulate in another process too, so this one stays small: a forked child
        # starts out counting its parent's resident pages in its peak RSS.
        simulated = Path(tmp) / "simulated.h5ad"
        subprocess.run(
            [sys.executable, "-m", "oncopersistnet.cli", "--log-level", "WARNING", "simulate", "--output", str(simulated),
             "--cells", str(min(args.simulated_cells, args.cells)), "--genes", str(n_genes), "--seed", str(params.simulate.seed + 1)],
            check=True,
        )
        _repeat_to(simulated, source, args.cells)
        simulated.unlink()
        del model  # measure the predict command alone, in its own process
        command = [
            sys.executable, "-m", "oncopersistnet.cli", "--log-level", "WARNING", "predict",
            "--input", str(source), "--output", str(Path(tmp) / "out.csv"), "--model", args.model,
            "--chunk-size", str(args.chunk_size), "--threads", str(args.threads), "--no-progress",
        ]
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        # wait4 gives this child's own peak RSS (RUSAGE_CHILDREN would mix in others).
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"predict failed with status {status}")
    results = {
        "model_genes": n_genes,
        "threads": args.threads,
        "session_cells_per_s_by_batch": {k: round(v) for k, v in session.items()},
        "predict_file": {
            "cells": args.cells,
            "chunk_size": args.chunk_size,
            "seconds_including_start_up": round(elapsed, 2),
            "cells_per_s": round(args.cells / elapsed),
        },
        "predict_peak_rss_mib": round(usage.ru_maxrss / 1024),
    }
    write_json(args.output, results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
