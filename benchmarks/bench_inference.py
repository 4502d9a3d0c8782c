"""onnxruntime against eager PyTorch, end to end from raw counts to probability.

Both sides run the same deployed computation (library-size normalisation, log1p,
gene selection, imputation, the folded min-max + PCA matrix multiply, the network,
calibration): PyTorch as :class:`~oncopersistnet.export.graph.DeployedGraph` in
eager mode under ``inference_mode``, onnxruntime as the exported file in the
session `predict` and `serve` use (:class:`~oncopersistnet.inference.OnnxPersisterModel`).
Measured at batch 1, 256 and 4,096 with 1 and 2 threads, on raw counts of the
pipeline's held-out test cells (tiled to the batch size). For context it also
times the project's Python path (``CellPreprocessor.transform`` in NumPy, then the
network in PyTorch), which is what evaluation uses and what a user without the
export would run; the targets are stated against the same-graph eager PyTorch.

Also measures an int8 copy (onnxruntime dynamic quantisation of the MatMul,
Conv-free weights): its speed and whether it keeps the held-out metrics, so the
project can decide on evidence whether to ship it.

Run after `make run` (`make bench` does); figures go to
benchmarks/results/inference.json. Measurements, not assertions.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from oncopersistnet.atomic import write_json
from oncopersistnet.evaluation.metrics import classification_metrics
from oncopersistnet.inference import OnnxPersisterModel
from oncopersistnet.logging_setup import configure_logging
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.preprocessing.outputs import read_split_cells

BATCH_SIZES = (1, 256, 4096)
THREADS = (1, 2)


def _cells_per_second(score: Callable[[np.ndarray], object], batch: np.ndarray, min_seconds: float) -> float:
    """Best of three timed rounds, each repeating ``score`` for at least ``min_seconds``."""
    score(batch)  # warm-up: allocations, lazy initialisation
    best = 0.0
    for _ in range(3):
        calls, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < min_seconds or calls == 0:
            score(batch)
            calls += 1
        best = max(best, calls * len(batch) / elapsed)
    return best


def _batches(counts: np.ndarray) -> dict[int, np.ndarray]:
    reps = -(-max(BATCH_SIZES) // len(counts))
    tiled = np.tile(counts, (reps, 1))
    return {b: np.ascontiguousarray(tiled[:b]) for b in BATCH_SIZES}


def _torch_scorer(paths: ProjectPaths, threads: int) -> Callable[[np.ndarray], object]:
    import torch

    from oncopersistnet.export.graph import DeployedGraph
    from oncopersistnet.model import load_checkpoint
    from oncopersistnet.preprocessing import CellPreprocessor

    torch.set_num_threads(threads)
    graph = DeployedGraph(CellPreprocessor.load(paths.preprocessor), load_checkpoint(paths.model)).eval()

    def score(batch: np.ndarray) -> object:
        with torch.inference_mode():
            return graph(torch.from_numpy(batch)).numpy()

    return score


def _python_path_scorer(paths: ProjectPaths, threads: int) -> Callable[[np.ndarray], object]:
    import torch

    from oncopersistnet.model import load_checkpoint, predict_proba
    from oncopersistnet.preprocessing import CellPreprocessor

    torch.set_num_threads(threads)
    preprocessor, network = CellPreprocessor.load(paths.preprocessor), load_checkpoint(paths.model)
    return lambda batch: predict_proba(network, preprocessor.transform(batch.astype(np.float64)))


def _quantised_copy(source: Path, target: Path) -> None:
    """int8 weights for MatMul/Gemm (dynamic quantisation: activations stay float)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/oncopersistnet.onnx")
    parser.add_argument("--min-seconds", type=float, default=0.5, help="time per measured round")
    parser.add_argument("--output", default="benchmarks/results/inference.json")
    args = parser.parse_args()
    configure_logging("WARNING")
    paths = ProjectPaths(Path("."))

    reference = OnnxPersisterModel(args.model)
    test = read_split_cells(paths, "test")
    column = {g: i for i, g in enumerate(test.genes)}
    counts = test.X[:, [column[g] for g in reference.genes]].toarray().astype(np.float32)
    batches = _batches(counts)

    with tempfile.TemporaryDirectory() as tmp:
        int8_path = Path(tmp) / "int8.onnx"
        _quantised_copy(Path(args.model), int8_path)
        speed: dict[str, dict[str, dict[str, float]]] = {}
        for threads in THREADS:
            scorers = {
                "python_path": _python_path_scorer(paths, threads),
                "pytorch_eager": _torch_scorer(paths, threads),
                "onnxruntime": OnnxPersisterModel(args.model, threads=threads).predict_proba,
                "onnxruntime_int8": OnnxPersisterModel(int8_path, threads=threads).predict_proba,
            }
            for name, score in scorers.items():
                for batch, cells in batches.items():
                    rate = _cells_per_second(score, cells, args.min_seconds)
                    speed.setdefault(f"{threads}_threads", {}).setdefault(name, {})[str(batch)] = round(rate)
                    print(f"threads={threads} {name:18s} batch={batch:5d}: {rate:12,.0f} cells/s", flush=True)
        float_p = reference.predict_proba(counts)
        int8_p = OnnxPersisterModel(int8_path).predict_proba(counts)
        int8_bytes, float_bytes = int8_path.stat().st_size, Path(args.model).stat().st_size

    ratios = {
        threads: {
            str(b): {
                "onnxruntime_vs_eager": round(s["onnxruntime"][str(b)] / s["pytorch_eager"][str(b)], 2),
                "int8_vs_eager": round(s["onnxruntime_int8"][str(b)] / s["pytorch_eager"][str(b)], 2),
                "onnxruntime_vs_python_path": round(s["onnxruntime"][str(b)] / s["python_path"][str(b)], 2),
            }
            for b in BATCH_SIZES
        }
        for threads, s in speed.items()
    }
    threshold = reference.threshold
    results = {
        "model": args.model,
        "model_genes": len(reference.genes),
        "test_cells": len(counts),
        "cells_per_s": speed,
        "speed_ratios": ratios,
        "int8": {
            "file_bytes": {"float32": float_bytes, "int8": int8_bytes},
            "max_abs_probability_diff": float(np.max(np.abs(float_p - int8_p))),
            "labels_changed": int(np.sum((float_p >= threshold) != (int8_p >= threshold))),
            "test_metrics_float32": {
                k: round(v, 4) for k, v in classification_metrics(test.y, float_p, threshold).items()
            },
            "test_metrics_int8": {
                k: round(v, 4) for k, v in classification_metrics(test.y, int8_p, threshold).items()
            },
        },
    }
    write_json(args.output, results)
    print(json.dumps({"speed_ratios": ratios, "int8": results["int8"]}, indent=2))


if __name__ == "__main__":
    main()
