"""Write benchmarks/results.md from the JSON figures of one `make bench` run.

Reads benchmarks/results/{inference,predict,serve,dvc,ingest}.json (whichever exist)
and writes absolute figures and ratios as Markdown tables, with the machine they were
measured on, and the same figures as one JSON file (benchmarks/results.json), from
which `make results` renders the README's benchmarks table. Run by `make bench` after
the benchmarks; commit both files when the figures should be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import date
from pathlib import Path

from oncopersistnet.atomic import write_json, write_text

TARGETS = {"1": 5.0, "256": 1.5}  # onnxruntime / eager PyTorch, from the deployment issue


def _machine() -> str:
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor() or "unknown CPU",
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {date.today().isoformat()}"


def _inference(figures: dict) -> list[str]:
    lines = [
        "## onnxruntime vs eager PyTorch (raw counts -> probability)",
        "",
        f"The same deployed computation on {figures['test_cells']} held-out test cells tiled to the batch "
        f"size, {figures['model_genes']} input genes; cells/s, best of three rounds. *PyTorch eager* runs "
        "the same deployed graph as the ONNX file (`DeployedGraph`) under `inference_mode`; the *Python "
        "path* is NumPy preprocessing (`CellPreprocessor.transform`) then the network in PyTorch, as "
        "evaluation runs it.",
        "",
        "| threads | batch | Python path | PyTorch eager | onnxruntime | ratio to eager | target "
        "| ratio to Python path | int8 onnxruntime | int8 ratio to eager |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for threads, by_runtime in figures["cells_per_s"].items():
        for batch in by_runtime["pytorch_eager"]:
            ratio = figures["speed_ratios"][threads][batch]
            target = f"≥ {TARGETS[batch]}×" if batch in TARGETS else ""
            lines.append(
                f"| {threads.split('_')[0]} | {int(batch):,} | {by_runtime['python_path'][batch]:,} | "
                f"{by_runtime['pytorch_eager'][batch]:,} | {by_runtime['onnxruntime'][batch]:,} | "
                f"**{ratio['onnxruntime_vs_eager']}×** | {target} | {ratio['onnxruntime_vs_python_path']}× | "
                f"{by_runtime['onnxruntime_int8'][batch]:,} | {ratio['int8_vs_eager']}× |"
            )
    q = figures["int8"]
    f32, i8 = q["test_metrics_float32"], q["test_metrics_int8"]
    lines += [
        "",
        "int8 (dynamic quantisation of MatMul/Gemm weights): file "
        f"{q['file_bytes']['float32'] / 1024:.0f} KiB -> "
        f"{q['file_bytes']['int8'] / 1024:.0f} KiB; max |Δ probability| {q['max_abs_probability_diff']:.4f}, "
        f"{q['labels_changed']} of {figures['test_cells']} labels changed; test ROC-AUC {f32['roc_auc']} -> "
        f"{i8['roc_auc']}, "
        f"F1 {f32['f1']} -> {i8['f1']}, ECE {f32['ece']} -> {i8['ece']}.",
        "",
    ]
    return lines


def _predict(figures: dict) -> list[str]:
    run = figures["predict_file"]
    session = ", ".join(f"{int(b):,}: {v:,}" for b, v in figures["session_cells_per_s_by_batch"].items())
    return [
        "## Streaming `oncopersistnet predict`",
        "",
        "| cells | chunk | threads | wall time (incl. start-up) | cells/s | peak RSS |",
        "|---|---|---|---|---|---|",
        f"| {run['cells']:,} | {run['chunk_size']:,} | {figures['threads']} | "
        f"{run['seconds_including_start_up']} s | "
        f"{run['cells_per_s']:,} | {figures['predict_peak_rss_mib']:,} MiB |",
        "",
        f"Backed `.h5ad` (CSR counts, {figures['model_genes']} genes) -> CSV; the bare session by batch size "
        f"(cells/s): {session}.",
        "",
        *_predict_parallel(figures),
    ]


def _predict_parallel(figures: dict) -> list[str]:
    parallel = figures.get("predict_parallel")
    if not parallel:
        return []
    cells = figures["predict_file"]["cells"]
    lines = [
        f"{parallel['processes']} `predict` processes on the same {cells:,}-cell file at once, "
        f"{parallel['threads_each']} "
        f"thread(s) each, on {figures.get('cpu_cores', '?')} cores; "
        f"{parallel['available_memory_before_mib']:,} MiB "
        f"available before they started:",
        "",
        "| process | wall time (incl. start-up) | peak RSS |",
        "|---|---|---|",
        *(
            f"| {i + 1} | {run['seconds_including_start_up']} s | {run['peak_rss_mib']:,} MiB |"
            for i, run in enumerate(parallel["runs"])
        ),
        "",
        f"All done in {parallel['seconds_until_all_done']} s "
        f"({parallel['cells_per_s_all_together']:,} cells/s together).",
        "",
    ]
    return lines


def _serve(figures: dict) -> list[str]:
    lines = [
        "## HTTP service (`oncopersistnet serve`, loopback)",
        "",
        f"uvicorn, one process, onnxruntime with {figures['service_threads']} thread(s); "
        "JSON `POST /predict` "
        "(genes + matrix) from concurrent keep-alive clients. Server peak RSS "
        f"{figures['server_peak_rss_mib']:,} MiB.",
        "",
        "| cells/request | requests | clients | non-200 | p50 | p99 | requests/s | cells/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for load in figures["loads"]:
        lines.append(
            f"| {load['cells_per_request']} | {load['requests']:,} | {load['clients']} | {load['non_200']} | "
            f"{load['p50_ms']} ms | {load['p99_ms']} ms | {load['requests_per_s']:,} | "
            f"{load['cells_per_s']:,} |"
        )
    return lines + [""] + _mixed_load(figures.get("mixed_load"))


def _mixed_load(mixed: dict | None) -> list[str]:
    if not mixed:
        return []
    by_class = mixed["answers_by_class"]
    return [
        "### Mixed load: valid and malformed requests",
        "",
        f"A fresh server (`{mixed['server_limits']}`, the other options at their defaults); "
        f"{mixed['requests']:,} requests "
        f"from {mixed['clients']} concurrent "
        f"clients, {mixed['valid_requests']:,} valid (JSON matrix, JSON maps, .h5ad upload, 1-5 cells) and "
        "the rest "
        "malformed in 14 ways (bad JSON, wrong types, unknown genes, too many cells, body over the limit, "
        "non-integer, "
        "negative and NaN counts, empty lists, ragged rows, garbage and empty .h5ad, wrong content type). "
        "The clients "
        "run on the same cores as the server.",
        "",
        "| requests | clients | 2xx | 4xx | 5xx | no answer | not the expected status | p50 (valid) "
        "| p99 (valid) | requests/s | server peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {mixed['requests']:,} | {mixed['clients']} | {by_class['2xx']:,} | {by_class['4xx']:,} | "
        f"{by_class['5xx']} | "
        f"{by_class['no_answer']} | {mixed['unexpected_status']} | "
        f"{mixed['p50_ms']} ms ({mixed['valid_p50_ms']} ms) | "
        f"{mixed['p99_ms']} ms ({mixed['valid_p99_ms']} ms) | {mixed['requests_per_s']:,} | "
        f"{mixed['server_peak_rss_mib']:,} MiB "
        f"(after warm-up: {mixed['server_peak_rss_after_warm_up_mib']:,} MiB) |",
        "",
    ]


def _dvc(figures: dict) -> list[str]:
    return [
        "## DVC",
        "",
        "| command | median | best | runs |",
        "|---|---|---|---|",
        *(
            f"| `{name.replace('_', ' ').replace(' noop', '')}`"
            f"{' (nothing to do)' if 'noop' in name else ''} | "
            f"{v['median_s']} s | {v['best_s']} s | {v['repeats']} |"
            for name, v in figures.items()
        ),
        "",
    ]


SECTIONS = {"inference": _inference, "predict": _predict, "serve": _serve, "dvc": _dvc}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="benchmarks/results")
    parser.add_argument("--output", default="benchmarks/results.md")
    parser.add_argument("--json", default="benchmarks/results.json", help="the same figures, for the README")
    args = parser.parse_args()
    machine = _machine()
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`benchmarks/report.py`) from one run on: "
        f"{machine}. "
        "Measurements, not assertions; rerun on your machine to compare.",
        "",
    ]
    collected: dict = {"machine": machine}
    for name in (*SECTIONS, "ingest"):
        path = Path(args.results) / f"{name}.json"
        if path.exists():
            figures = json.loads(path.read_text())
            collected[name] = figures | {"targets": TARGETS} if name == "inference" else figures
            if name in SECTIONS:
                lines += SECTIONS[name](figures)
    write_text(args.output, "\n".join(lines))
    write_json(args.json, collected)
    print(f"wrote {args.output} and {args.json}")


if __name__ == "__main__":
    main()
