"""The README's data, no-call floor, worked-example and benchmark sections come from committed files.

tests/test_readme_blocks.py checks every section of ``BLOCKS`` against the committed
files (these included); here: the figures themselves against hand-computed values,
files outside metrics/, a missing benchmarks file, and staleness noticed when a
committed figure changes.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import sparse

from oncopersistnet.data.summary import data_summary
from oncopersistnet.inference.signal import cell_signal, signal_tail
from oncopersistnet.reporting.facts import (
    BENCHMARKS_PENDING,
    benchmarks_block,
    data_block,
    signal_floors_block,
)
from oncopersistnet.reporting.readme import BLOCKS, block_body, render, start_marker

ROOT = Path(__file__).resolve().parents[1]


def _cells() -> ad.AnnData:
    """Four cells in two cultures; cell 3 is labelled persister in an untreated culture (a flip)."""
    counts = np.array([[0, 2, 0, 1], [3, 0, 0, 0], [1, 1, 1, 1], [0, 0, 5, 5]])
    obs = pd.DataFrame(
        {
            "sample": ["a", "a", "b", "b"],
            "condition": ["day0", "day0", "treated_day7", "treated_day7"],
            "label": ["non-persister", "persister", "persister", "persister"],
        },
        index=[f"c{i}" for i in range(4)],
    )
    adata = ad.AnnData(X=sparse.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=list("WXYZ")))
    adata.uns["source"] = {"simulator": "x", "cycling_fraction": 0.2, "label_noise": 0.25}
    adata.uns["source"] |= {"world_seed": 0, "seed": 1, "effect_size": 2.0}
    return adata


def test_data_summary_counts_what_the_cells_hold():
    summary = data_summary(_cells())
    # 9 non-zero of 16 entries; totals 3, 3, 4, 10; detected 2, 1, 4, 2
    assert summary["zero_fraction"] == 7 / 16
    assert summary["library_size"] == {
        "min": 3,
        "max": 10,
        "median": 3.5,
        "p5": 3.0,
        "p95": pytest.approx(9.1),
    }
    assert summary["genes_detected"] == {"min": 1, "median": 2.0}
    assert summary["by_condition"] == {
        "day0": {"samples": 1, "cells": 2},
        "treated_day7": {"samples": 1, "cells": 2},
    }
    assert summary["persister_cells"] == 3 and summary["labels_flipped"] == 1
    real = _cells()
    real.uns["source"] = {"input": "data/external/x.h5ad"}
    assert data_summary(real)["labels_flipped"] is None and data_summary(real)["simulate"] is None


def test_data_block_renders_the_summary():
    block = data_block(data_summary(_cells()))
    assert "| library size | 3–10 counts (5th–95th percentile 3–9, 3.0-fold; median 4) |" in block
    assert "| samples by condition | 1 `day0` (2 cells), 1 `treated_day7` (2 cells) |" in block
    assert (
        "| label noise (`simulate.label_noise`) | 25%: 1 labels disagree with their culture's condition |"
        in block
    )
    real = _cells()
    real.uns["source"] = {"input": "data/external/x.h5ad"}
    assert "label noise" not in data_block(data_summary(real))


def test_signal_tail_and_the_floor_verdict():
    aligned = np.array([[5.0, 0, 1], [np.nan, 2, 0], [0, 0, 0]])
    signal = cell_signal(aligned, np.array([True, False, True]))
    tail = signal_tail(signal)
    assert tail["counts"]["min"] == 0 and tail["detected_genes"]["p1"] == pytest.approx(0.02)
    figures = {"cells": 1512} | {
        name: {"min": m, "p0.1": m + 1, "p1": m + 10}
        for name, m in (("counts", 268), ("detected_genes", 108), ("detected_selected_genes", 94))
    }
    params = {
        "predict": {"min_counts": 20, "min_detected_genes": 10, "min_detected_selected_genes": 5},
        "validate": {"min_counts_per_cell": 50, "min_genes_per_cell": 20},
    }
    block = signal_floors_block(figures, params)
    assert "1,512 training cells have at least 268 counts (0.1th percentile 269, 1st 278)" in block
    assert block.endswith("so no cell that training would accept is refused a call.")
    params["predict"]["min_counts"] = 60  # above the QC floor: the block says so instead
    assert "`predict.min_counts` 60 is above `validate.min_counts_per_cell` 50" in signal_floors_block(
        figures, params
    )


def _bench_results():
    ratio = {"onnxruntime_vs_eager": 6.14, "onnxruntime_vs_python_path": 8.38, "int8_vs_eager": 5.98}
    speeds = {"pytorch_eager": {"1": 4093}, "onnxruntime": {"1": 25130}, "python_path": {"1": 3000}}
    return {
        "machine": "2 cores (X), Python 3.11.7, 2026-01-01",
        "inference": {
            "test_cells": 745,
            "targets": {"1": 5.0},
            "cells_per_s": {"1_thread": speeds | {"onnxruntime_int8": {"1": 24461}}},
            "speed_ratios": {"1_thread": {"1": ratio}},
            "int8": {
                "labels_changed": 6,
                "test_metrics_float32": {"roc_auc": 0.8826, "f1": 0.734},
                "test_metrics_int8": {"roc_auc": 0.8822, "f1": 0.7258},
            },
        },
        "dvc": {"dvc_repro_noop": {"median_s": 0.71, "best_s": 0.7, "repeats": 5}},
    }


def test_benchmarks_block_renders_one_run_or_says_it_was_not_measured():
    assert benchmarks_block(None) == BENCHMARKS_PENDING
    block = benchmarks_block(_bench_results())
    assert block.startswith("Measured on 2 cores (X), Python 3.11.7, 2026-01-01")
    assert (
        "| onnxruntime vs eager PyTorch, same graph, batch 1 | **6.14×** (1 thread): 25,130 vs 4,093 cells/s "
        "(target ≥ 5.0×: met); vs the Python path 8.38× |"
    ) in block
    assert "ROC-AUC 0.8826 -> 0.8822, F1 0.734 -> 0.7258, 6 of 745 labels change" in block
    assert "| `dvc repro` (nothing to do) | median 0.71 s |" in block


def test_a_missing_benchmarks_file_renders_pending_but_a_missing_metrics_file_fails(tmp_path):
    (tmp_path / "metrics").mkdir()
    assert render("benchmarks", tmp_path / "metrics") == BENCHMARKS_PENDING
    assert start_marker("benchmarks").endswith("from benchmarks/results.json; do not edit) -->")
    assert "metrics/training_signal.json and params.yaml" in start_marker("signal_floors")
    with pytest.raises(Exception, match="gbm_comparison.json: cannot be read"):
        render("gbm_example", tmp_path / "metrics")


@pytest.mark.parametrize(
    ("name", "path", "change"),
    [
        ("data", "metrics/data.json", ("labels_flipped", 67)),
        ("signal_floors", "metrics/training_signal.json", ("cells", 1513)),
        ("gbm_example", "examples/gbm_comparison.json", ("example", {})),
    ],
)
def test_a_changed_committed_figure_makes_its_block_stale(tmp_path, name, path, change):
    """The staleness test can fail: one figure changed in a copy of the committed files."""
    for folder in ("metrics", "examples"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    readme = (ROOT / "README.md").read_text()
    assert block_body(readme, name) == render(name, tmp_path / "metrics")
    figures = json.loads((tmp_path / path).read_text())
    key, value = change
    figures[key] = value if key != "example" else figures[key] | {"cores": figures[key]["cores"] + 1}
    (tmp_path / path).write_text(json.dumps(figures))
    assert block_body(readme, name) != render(name, tmp_path / "metrics")


def test_every_block_reads_a_committed_file_or_params():
    for name, block in BLOCKS.items():
        for source in block.sources:
            where = ROOT / source if "/" in source or source == "params.yaml" else ROOT / "metrics" / source
            assert where.exists() or source in block.optional, f"{name}: {source} is not committed"


def test_params_quoted_in_the_readme_match_params_yaml():
    """A default quoted as "`section.key` (value)" in the README is the value params.yaml holds."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    quoted = re.findall(r"`(\w+)\.(\w+)`\s+\((\d[\d.e-]*)(\s*%)?", (ROOT / "README.md").read_text())
    assert len(quoted) >= 6
    for section, key, value, percent in quoted:
        expected = float(value) / (100 if percent else 1)
        assert params[section][key] == pytest.approx(expected), f"README says {section}.{key} = {value}"


def _serve_and_predict():
    predict = {
        "threads": 2,
        "model_genes": 2000,
        "predict_peak_rss_mib": 608,
        "predict_file": {
            "cells": 1_000_000,
            "chunk_size": 10_000,
            "seconds_including_start_up": 20.02,
            "cells_per_s": 49950,
        },
        "session_cells_per_s_by_batch": {"1": 19877},
        "predict_parallel": {
            "processes": 2,
            "threads_each": 1,
            "available_memory_before_mib": 23372,
            "runs": [{"seconds_including_start_up": 31.1, "peak_rss_mib": 608}] * 2,
            "seconds_until_all_done": 31.2,
            "cells_per_s_all_together": 64103,
        },
    }
    load = {"cells_per_request": 1, "requests": 2000, "clients": 8, "non_200": 0, "p50_ms": 59}
    load |= {"p99_ms": 84, "requests_per_s": 134.2, "cells_per_s": 134}
    serve = {"service_threads": 1, "server_peak_rss_mib": 270, "loads": [load]}
    return predict, serve


def test_benchmarks_block_reads_the_keys_report_py_writes():
    """The same figures go through benchmarks/report.py's Markdown and the README's block."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "benchmarks/report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    predict, serve = _serve_and_predict()
    assert report.SECTIONS["predict"](predict) and report.SECTIONS["serve"](serve)
    block = benchmarks_block({"machine": "m", "predict": predict, "serve": serve})
    assert (
        "| `oncopersistnet predict`, 1,000,000 cells (backed .h5ad, 10,000-cell chunks, 2 threads) | 20.02 s "
        "including start-up (49,950 cells/s); peak RSS 608 MiB |"
    ) in block
    assert "| 31.1 s and 31.1 s; peak RSS 608 MiB and 608 MiB (23,372 MiB available) |" in block
    assert (
        "| `oncopersistnet serve`, 8 concurrent clients, 1 cell(s) per JSON request | p50 59 ms, p99 84 ms, "
        "134.2 requests/s, 0 non-200 in 2,000 requests; server peak RSS 270 MiB |"
    ) in block
