"""Throughput and peak memory of `oncopersistnet predict` through onnxruntime.

Measures, on the model the pipeline exported (models/oncopersistnet.onnx):
cells/s of the bare session at several batch sizes, and wall time, cells/s and
peak RSS of the whole predict path (backed .h5ad -> chunks -> CSV) on a
simulated input. Run with `make bench` after `make run`. Figures are printed as
a table and written to benchmarks/results/predict.json; they are measurements,
not assertions.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from oncopersistnet.atomic import write_h5ad, write_json
from oncopersistnet.config import load_params
from oncopersistnet.data.simulate import simulate_cells
from oncopersistnet.inference import OnnxPersisterModel, predict_file
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/oncopersistnet.onnx")
    parser.add_argument("--cells", type=int, default=50_000)
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
        config = replace(params.simulate, n_cells=args.cells, n_genes=n_genes, seed=params.simulate.seed + 1)
        write_h5ad(source, simulate_cells(config))
        started = time.perf_counter()
        predict_file(model, source, Path(tmp) / "out.csv", chunk_size=args.chunk_size, progress=False)
        elapsed = time.perf_counter() - started
    results = {
        "model_genes": n_genes,
        "threads": args.threads,
        "session_cells_per_s_by_batch": {k: round(v) for k, v in session.items()},
        "predict_file": {
            "cells": args.cells,
            "chunk_size": args.chunk_size,
            "seconds": round(elapsed, 2),
            "cells_per_s": round(args.cells / elapsed),
        },
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    write_json(args.output, results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
