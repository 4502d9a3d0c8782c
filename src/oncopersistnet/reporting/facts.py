"""README sections that describe the data, the floors, the worked example and the benchmarks.

Like :mod:`oncopersistnet.reporting.blocks`, each body is rendered from a committed
file (``metrics/data.json`` from ingest, ``metrics/training_signal.json`` from
preprocess with params.yaml, ``examples/gbm_comparison.json`` from
``make example-gbm``, ``benchmarks/results.json`` from ``make bench``), so no figure
in these sections is typed by hand and a test notices when one is stale.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oncopersistnet.evaluation.report import ordered_families, results_table


def _simulation_rows(data: Mapping[str, Any]) -> list[str]:
    """The simulator's design as params.yaml set it, beside what it produced."""
    sim = data["simulate"]
    flipped = data["labels_flipped"]
    return [
        f"| cycling persisters (`simulate.cycling_fraction`) | {sim['cycling_fraction']:.0%} |",
        f"| label noise (`simulate.label_noise`) | {sim['label_noise']:.0%}: {flipped:,} labels disagree "
        "with their culture's condition |",
    ]


def _samples_cell(data: Mapping[str, Any]) -> str:
    by_condition = data["by_condition"]
    if not by_condition:
        return f"{data['samples']}"
    return ", ".join(
        f"{c['samples']} `{name}` ({c['cells']:,} cells)" for name, c in sorted(by_condition.items())
    )


def data_block(data: Mapping[str, Any]) -> str:
    """The dataset the pipeline read: size, sparsity, depth, samples, classes, and on simulated data
    the simulator's design and its label noise counted in the cells."""
    lib, genes = data["library_size"], data["genes_detected"]
    where = (
        "simulated (`simulate.*` in params.yaml: "
        + ", ".join(f"{k} {data['simulate'][k]}" for k in ("world_seed", "seed", "effect_size"))
        + ")"
        if data["simulate"]
        else f"`{data['source']}`"
    )
    rows = [
        f"Measured by `ingest` on the raw cells (`metrics/data.json`); data: {where}.",
        "",
        "| property | value |",
        "|---|---|",
        f"| cells × genes | {data['cells']:,} × {data['genes']:,} |",
        f"| zeros | {data['zero_fraction']:.1%} |",
        f"| library size | {lib['min']:,.0f}–{lib['max']:,.0f} counts (5th–95th percentile "
        f"{lib['p5']:,.0f}–{lib['p95']:,.0f}, {lib['p95'] / lib['p5']:.1f}-fold; "
        f"median {lib['median']:,.0f}) |",
        f"| genes detected per cell | ≥ {genes['min']:,} (median {genes['median']:,.0f}) |",
        f"| samples by condition | {_samples_cell(data)} |",
        f"| persisters | {data['persister_fraction']:.1%} ({data['persister_cells']:,} cells) |",
    ]
    if data["simulate"]:
        rows += _simulation_rows(data)
    return "\n".join(rows)


#: The floors (params.yaml ``predict``) and the training QC floors they must stay under (``validate``).
_FLOORS = (
    ("counts", "min_counts", "min_counts_per_cell", "counts"),
    ("detected_genes", "min_detected_genes", "min_genes_per_cell", "detected genes"),
    ("detected_selected_genes", "min_detected_selected_genes", None, "detected selected genes"),
)


def _floor_verdict(signal: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    """Whether any floor reaches a training cell or a cell the training QC would accept."""
    predict, validate = params["predict"], params["validate"]
    above = [
        f"`predict.{key}` {predict[key]:g} is above the least training cell's {signal[figure]['min']:g}"
        for figure, key, _, _ in _FLOORS
        if predict[key] > signal[figure]["min"]
    ] + [
        f"`predict.{key}` {predict[key]:g} is above `validate.{qc}` {validate[qc]:g}"
        for _, key, qc, _ in _FLOORS
        if qc and predict[key] > validate[qc]
    ]
    if above:
        return "careful: " + "; ".join(above) + ", so cells that training accepts can be refused a call."
    return (
        "every floor is below the least training cell and below the training QC floors "
        f"`validate.min_counts_per_cell` ({validate['min_counts_per_cell']:g}) and "
        f"`validate.min_genes_per_cell` ({validate['min_genes_per_cell']:g}), so no cell that training "
        "would accept is refused a call."
    )


def signal_floors_block(signal: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    """Where the no-call floors sit against the training cells (measured by preprocess)."""
    predict = params["predict"]
    tails = ", ".join(
        f"{signal[figure]['min']:,.0f} {what} (0.1th percentile {signal[figure]['p0.1']:,.0f}, "
        f"1st {signal[figure]['p1']:,.0f})"
        for figure, _, _, what in _FLOORS
    )
    floors = ", ".join(f"`predict.{key}` {predict[key]:g}" for _, key, _, _ in _FLOORS)
    return (
        f"Where the defaults come from (`metrics/training_signal.json`, written by `preprocess`): the "
        f"pipeline's {signal['cells']:,} training cells have at least {tails}. The floors ({floors}): "
        f"{_floor_verdict(signal, params)}"
    )


def gbm_example_block(comparison: Mapping[str, Any]) -> str:
    """The worked example's comparison on its held-out patient(s), from ``make example-gbm``."""
    context, example = comparison["context"], comparison["example"]
    split = example["split"]
    models = comparison["models"]
    reference = models["cnn_lstm"]["roc_auc"]["mean"]
    ahead = [f for f in ordered_families(models) if models[f]["roc_auc"]["mean"] > reference]
    paired = comparison.get("paired")
    if paired and len(paired["samples"]) < 2:
        # Resampling whole samples from one sample draws it every time: a zero-width interval
        # that would read as a verdict. The table keeps the means and spreads only.
        comparison = {k: v for k, v in comparison.items() if k != "paired"}
    return "\n\n".join(
        [
            f"`make example-gbm` ({example['minutes']:.0f} min wall time on {example['cores']} cores; "
            "`examples/gbm_comparison.json`): trained on patients "
            f"{', '.join(split['train'])}, early-stopped on {', '.join(split['val'])}, tested on "
            f"{', '.join(context['test_samples'])} ({context['n_test_cells']:,} cells); seeds "
            f"{context['seeds']} for models whose fit depends on the seed, mean ± sample std over them.",
            results_table(comparison),
            "Families with a higher mean ROC-AUC than the CNN-LSTM on this patient: "
            + (", ".join(ahead) or "none")
            + "."
            + (
                ""
                if "paired" in comparison
                else " No paired bootstrap intervals: with one test patient there is nothing to resample."
            ),
        ]
    )


#: What the benchmarks section says until ``make bench`` has written ``benchmarks/results.json``.
BENCHMARKS_PENDING = (
    "Not measured yet: run `make bench` (it writes `benchmarks/results.json`), then `make results`."
)


def _inference_rows(figures: Mapping[str, Any]) -> list[str]:
    """onnxruntime against eager PyTorch and the Python path, per batch, each thread count."""
    rows = []
    threads = list(figures["cells_per_s"])
    for batch in figures["cells_per_s"][threads[0]]["pytorch_eager"]:
        ratios = [figures["speed_ratios"][t][batch] for t in threads]
        eager = ", ".join(
            f"**{r['onnxruntime_vs_eager']}×** ({t.split('_')[0]} thread{'s' * (t.split('_')[0] != '1')})"
            for t, r in zip(threads, ratios, strict=True)
        )
        speeds = ", ".join(
            f"{figures['cells_per_s'][t]['onnxruntime'][batch]:,} vs "
            f"{figures['cells_per_s'][t]['pytorch_eager'][batch]:,}"
            for t in threads
        )
        target = figures.get("targets", {}).get(batch)
        verdict = ""
        if target is not None:
            met = min(r["onnxruntime_vs_eager"] for r in ratios) >= target
            verdict = f" (target ≥ {target}×: {'met' if met else '**not met**'})"
        python = " / ".join(f"{r['onnxruntime_vs_python_path']}×" for r in ratios)
        rows.append(
            f"| onnxruntime vs eager PyTorch, same graph, batch {int(batch):,} | {eager}: {speeds} cells/s"
            f"{verdict}; vs the Python path {python} |"
        )
    q = figures["int8"]
    f32, i8 = q["test_metrics_float32"], q["test_metrics_int8"]
    rows.append(
        f"| int8 dynamic quantisation (MatMul/Gemm) | ROC-AUC {f32['roc_auc']} -> {i8['roc_auc']}, F1 "
        f"{f32['f1']} -> {i8['f1']}, {q['labels_changed']} of {figures['test_cells']:,} labels change |"
    )
    return rows


def _predict_rows(figures: Mapping[str, Any]) -> list[str]:
    run = figures["predict_file"]
    rows = [
        f"| `oncopersistnet predict`, {run['cells']:,} cells (backed .h5ad, {run['chunk_size']:,}-cell "
        f"chunks, {figures['threads']} threads) | {run['seconds_including_start_up']} s including start-up "
        f"({run['cells_per_s']:,} cells/s); peak RSS {figures['predict_peak_rss_mib']:,} MiB |"
    ]
    parallel = figures.get("predict_parallel")
    if parallel:
        rows.append(
            f"| {parallel['processes']} such `predict` processes at once, {parallel['threads_each']} "
            f"thread(s) each | "
            + " and ".join(f"{r['seconds_including_start_up']} s" for r in parallel["runs"])
            + "; peak RSS "
            + " and ".join(f"{r['peak_rss_mib']:,} MiB" for r in parallel["runs"])
            + f" ({parallel['available_memory_before_mib']:,} MiB available) |"
        )
    return rows


def _serve_rows(figures: Mapping[str, Any]) -> list[str]:
    rows = [
        f"| `oncopersistnet serve`, {load['clients']} concurrent clients, {load['cells_per_request']} "
        f"cell(s) per JSON request | p50 {load['p50_ms']} ms, p99 {load['p99_ms']} ms, "
        f"{load['requests_per_s']:,} requests/s, {load['non_200']} non-200 in {load['requests']:,} "
        f"requests; server peak RSS {figures['server_peak_rss_mib']:,} MiB |"
        for load in figures["loads"]
    ]
    mixed = figures.get("mixed_load")
    if mixed:
        by_class = mixed["answers_by_class"]
        rows.append(
            f"| `serve` mixed load: {mixed['clients']} concurrent clients, {mixed['requests']:,} requests, "
            f"{mixed['valid_requests']:,} valid, the rest malformed | {by_class['5xx']} 5xx, "
            f"{by_class['no_answer']} unanswered, {mixed['unexpected_status']} not the expected status "
            f"({by_class['2xx']:,} 2xx, {by_class['4xx']:,} 4xx); p50 {mixed['p50_ms']} ms, p99 "
            f"{mixed['p99_ms']} ms, {mixed['requests_per_s']:,} requests/s; server peak RSS "
            f"{mixed['server_peak_rss_mib']:,} MiB |"
        )
    return rows


def _other_rows(results: Mapping[str, Any]) -> list[str]:
    rows = [
        f"| `{name.replace('_', ' ').replace(' noop', '')}`{' (nothing to do)' if 'noop' in name else ''} "
        f"| median {v['median_s']} s |"
        for name, v in results.get("dvc", {}).items()
    ]
    ingest = results.get("ingest")
    if ingest:
        rows.append(
            f"| ingest path (read, label, harmonise, QC summaries), {ingest['cells']:,} cells × "
            f"{ingest['genes']:,} genes, {ingest['nonzeros'] / 1e6:.0f} M non-zeros | {ingest['seconds']} s; "
            f"peak RSS {ingest['peak_rss_mib']:,} MiB, against {ingest['dense_float32_mib']:,} MiB for one "
            "dense float32 copy |"
        )
    return rows


def benchmarks_block(results: Mapping[str, Any] | None) -> str:
    """The headline figures of the last ``make bench`` (``benchmarks/results.json``), with the machine."""
    if results is None:
        return BENCHMARKS_PENDING
    rows = [
        f"Measured on {results['machine']} (`benchmarks/results.json`; every figure: "
        "[`benchmarks/results.md`](benchmarks/results.md)):",
        "",
        "| what | figure |",
        "|---|---|",
    ]
    if "inference" in results:
        rows += _inference_rows(results["inference"])
    if "predict" in results:
        rows += _predict_rows(results["predict"])
    if "serve" in results:
        rows += _serve_rows(results["serve"])
    return "\n".join(rows + _other_rows(results))
