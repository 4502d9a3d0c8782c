"""The comparison as Markdown: ``reports/comparison.md``, and the table and lines the README reuses.

Everything here renders numbers the compare stage measured (``metrics/comparison.json``);
nothing is typed by hand, so the report cannot drift from the pipeline's output. The
README's results section (:mod:`oncopersistnet.reporting.blocks`) is built from these pieces.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from oncopersistnet.choices import ALL_MODEL_FAMILIES
from oncopersistnet.evaluation.paired import MIN_SAMPLES_PER_CLASS, PAIRED_METRICS

#: Threshold-free metrics first: they do not depend on a model's calibration or cut-off.
TABLE_METRICS = ("roc_auc", "pr_auc", "f1", "balanced_accuracy", "mcc", "brier", "ece")
HEADERS = {
    "f1": "F1",
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "balanced_accuracy": "bal. acc.",
    "mcc": "MCC",
    "brier": "Brier ↓",
    "ece": "ECE ↓",
}
DESCRIPTIONS = {
    "cnn_lstm": "CNN-LSTM (the project's network; PCA components in explained-variance order)",
    "cnn_lstm_attention": (
        "CNN-LSTM with additive attention pooling over all LSTM outputs instead of the final state"
    ),
    "cnn_lstm_permuted": "CNN-LSTM on randomly permuted component orders (one order per seed)",
    "mlp": "MLP with about the CNN-LSTM's parameter count",
    "logistic_regression": "logistic regression (L2) on the PCA features",
    "linear_svm": "linear SVM on the PCA features, its margin Platt-scaled on validation",
    "hist_gbm": "histogram gradient boosting on the PCA features",
    "logistic_regression_all_genes": "logistic regression (L2) on every gene, log1p-normalised, standardised",
    "linear_svm_all_genes": "linear SVM on every gene, log1p-normalised and standardised",
    "marker_score": "marker score (persister signature learned from all genes on train)",
    "celltypist": "CellTypist, trained through its own API on all genes",
}


def ordered_families(models: Mapping[str, Any]) -> list[str]:
    """The project's family order (network, controls, baselines), not the JSON's sorted keys."""
    return [f for f in ALL_MODEL_FAMILIES if f in models] + sorted(
        f for f in models if f not in ALL_MODEL_FAMILIES
    )


def _mean_std_text(value: Mapping[str, float], n_fits: int) -> str:
    """``mean ± std`` to three decimals; the mean alone after one fit; ``n/a`` for NaN."""
    if value["mean"] != value["mean"]:  # NaN
        return "n/a"
    if n_fits == 1:  # no spread was measured: say nothing rather than ± 0
        return f"{value['mean']:.3f}"
    return f"{value['mean']:.3f} ± {value['std']:.3f}"


def _cell(entry: Mapping[str, Any], metric: str) -> str:
    return _mean_std_text(entry[metric], entry["n_fits"])


def _difference_cell(entry: Mapping[str, Any]) -> str:
    """``+0.012 [-0.010, +0.030] level``: pooled difference, its interval, the verdict."""
    return f"{entry['difference']:+.3f} [{entry['low']:+.3f}, {entry['high']:+.3f}] {entry['verdict']}"


def results_table(comparison: Mapping[str, Any], order: list[str] | None = None) -> str:
    """Markdown table: one row per model (``order``, else the project's), mean ± std over fits, and,
    where the comparison has them, the paired differences with the reference and their verdicts.

    Nothing is in bold: a higher mean is not a better model unless the paired interval says so,
    and that is what the verdict columns say.
    """
    models: Mapping[str, Any] = comparison["models"]
    paired = comparison.get("paired")
    metrics_header = " | ".join(HEADERS[m] for m in TABLE_METRICS)
    paired_header = (
        "".join(
            f" {HEADERS[m]} vs {paired['reference']} (Δ [{paired['level']:.0%} CI]) |" for m in PAIRED_METRICS
        )
        if paired
        else ""
    )
    lines = [
        f"| model | {metrics_header} | fits |{paired_header}",
        "|---|" + "---|" * (len(TABLE_METRICS) + 1) + ("---|" * len(PAIRED_METRICS) if paired else ""),
    ]
    for family in order or ordered_families(models):
        entry = models[family]
        cells = [_cell(entry, metric) for metric in TABLE_METRICS]
        row = f"| {family} | " + " | ".join(cells) + f" | {entry['n_fits']} |"
        if paired:
            verdicts = paired["families"].get(family)
            for metric in PAIRED_METRICS:
                if family == paired["reference"]:
                    row += " reference |"
                else:
                    row += f" {_difference_cell(verdicts[metric]) if verdicts else 'n/a'} |"
        lines.append(row)
    return "\n".join(lines)


#: What the README and the report say while the metrics file predates the paired comparison.
PAIRED_PENDING = (
    "Paired comparison not measured yet: `metrics/comparison.json` was written before the compare stage "
    "reported paired differences; `make run` (or `dvc repro compare`) fills this in."
)


def paired_line(comparison: Mapping[str, Any]) -> str:
    """How the differences and verdicts of :func:`results_table` were computed (from the file)."""
    paired = comparison.get("paired")
    if not paired:
        return PAIRED_PENDING
    return (
        f"Δ: a model's ROC-AUC (PR-AUC) on the pooled out-of-fold predictions of all "
        f"{len(paired['samples'])} held-out samples minus the {paired['reference']}'s, averaged over seeds "
        f"{paired['seeds']}; in brackets the {paired['level']:.0%} percentile interval over "
        f"{paired['resamples']:,} paired bootstrap resamples of the held-out samples (whole samples drawn "
        f"with replacement within each class, every model scored on the same draw; seed {paired['seed']}). "
        "better / worse: the interval excludes 0; level: it does not. No model is marked best otherwise."
        + _untested_text(paired)
    )


def _untested_text(paired: Mapping[str, Any]) -> str:
    """Why the verdicts say ``untested``, when they do."""
    per_class = paired.get("samples_per_class")
    if per_class is None or min(per_class) >= MIN_SAMPLES_PER_CLASS:
        return ""
    return (
        f" untested: {per_class[0]} non-persister and {per_class[1]} persister held-out sample(s); a class "
        f"needs {MIN_SAMPLES_PER_CLASS} for the resamples to vary, so these intervals say nothing."
    )


#: Columns of :func:`coverage_table`: a conformal figure of ``metrics/comparison.json`` and its header.
COVERAGE_COLUMNS = {
    "coverage_persister": "persisters covered",
    "coverage_non_persister": "non-persisters covered",
    "both_fraction": "both classes (uncertain)",
    "empty_fraction": "empty set",
}


def coverage_table(comparison: Mapping[str, Any], order: list[str] | None = None) -> str | None:
    """Markdown table of the conformal sets on the test cells: per model, the share of each class's
    cells whose set holds their class, and of sets with both classes or none (mean ± std over fits).

    ``None`` when the comparison measured no conformal sets (a metrics file from before they were).
    """
    models: Mapping[str, Any] = comparison["models"]
    families = [f for f in (order or ordered_families(models)) if "conformal" in models[f]]
    if not families:
        return None
    lines = [
        "| model | " + " | ".join(COVERAGE_COLUMNS.values()) + " | fits |",
        "|---|" + "---|" * len(COVERAGE_COLUMNS) + "---|",
    ]
    for family in families:
        entry = models[family]
        cells = [_mean_std_text(entry["conformal"][name], entry["n_fits"]) for name in COVERAGE_COLUMNS]
        lines.append(f"| {family} | " + " | ".join(cells) + f" | {entry['n_fits']} |")
    return "\n".join(lines)


def premise_summary(comparison: Mapping[str, Any]) -> str:
    """Plain statement of what the permutation and MLP controls measured: the paired differences with
    the CNN-LSTM and their verdicts where measured, else the means (no verdict typed in)."""
    models = comparison["models"]
    if "cnn_lstm" not in models:
        return "The CNN-LSTM was not part of this comparison."
    base = models["cnn_lstm"]
    paired = (comparison.get("paired") or {}).get("families", {})
    lines = []
    for control, label in (("cnn_lstm_permuted", "random component orders"), ("mlp", "the same-size MLP")):
        if control not in models:
            continue
        other = models[control]
        if control in paired:
            pairs = paired[control]
            diffs = [
                f"{HEADERS[m]} {pairs[m]['pooled']:.3f} vs {pairs[m]['reference_pooled']:.3f} "
                f"({_difference_cell(pairs[m])})"
                for m in PAIRED_METRICS
            ]
            where = "pooled out of fold"
        else:
            diffs = [
                f"{HEADERS[m]} {other[m]['mean']:.3f} vs {base[m]['mean']:.3f} "
                f"({other[m]['mean'] - base[m]['mean']:+.3f})"
                for m in PAIRED_METRICS
            ]
            where = "mean over fits"
        lines.append(
            f"- With {label}: "
            + ", ".join(diffs)
            + f" against the CNN-LSTM in explained-variance order ({where})."
        )
    permutations = comparison.get("permutations", [])
    if permutations:
        per = ", ".join(f"{p['roc_auc']:.3f}" for p in permutations)
        lines.append(f"- ROC-AUC per random order (one per seed and fold): {per}.")
    return "\n".join(lines)


#: How each threshold rule of ``compare.threshold_rule`` reads in the report.
THRESHOLD_RULE_TEXT = {
    "youden": "the cut that maximises sensitivity + specificity (Youden's J, i.e. balanced accuracy) on "
    "its calibrated validation cells",
    "f1": "the cut that maximises F1 on its calibrated validation cells",
    "fixed": "a fixed cut at {fixed}",
}

#: How the families' inputs read in the report (``FitResult.view``).
VIEW_TEXT = {
    "pca": "PCA of the selected genes",
    "all_genes": "all genes",
    "signature": "a signature picked from all genes",
}


def posthoc_text(context: Mapping[str, Any]) -> str:
    """The one post-hoc step every family got, as the context of the comparison records it."""
    rule = THRESHOLD_RULE_TEXT[context["threshold_rule"]].format(fixed=context.get("fixed_threshold"))
    return (
        f"Every family gets the same post-hoc step, fitted on each fit's validation samples "
        f"(`src/oncopersistnet/evaluation/posthoc.py`): {context['calibration']} calibration of its own "
        f"probability's log-odds, then {rule} (`compare.threshold_rule: {context['threshold_rule']}`); "
        f"F1, balanced accuracy and MCC are taken at that cut, Brier and ECE on the calibrated "
        f"probabilities. Class weights: `{context['class_weight']}` for every family that takes one."
    )


def reads_table(comparison: Mapping[str, Any], order: list[str] | None = None) -> str:
    """Markdown table: what each family reads (view, genes, planted genes on simulated data), the cut
    its validation cells chose, and its threshold-free validation figure (what selection may use)."""
    models: Mapping[str, Any] = comparison["models"]
    families = order or ordered_families(models)
    planted = any("planted_read" in models[f]["genes"] for f in families)
    header = "| model | reads | genes read |" + (" planted genes read |" if planted else "")
    header += " cut chosen on validation | validation ROC-AUC |"
    lines = [header, "|---|---|---|" + ("---|" if planted else "") + "---|---|"]
    for family in families:
        entry = models[family]
        genes = entry["genes"]
        row = f"| {family} | {VIEW_TEXT[genes['view']]} | {genes['genes_read']:,.0f} |"
        if planted:
            row += f" {genes['planted_read']:.0f} of {genes['planted_total']} |"
        row += (
            f" {_mean_std_text(entry['threshold'], entry['n_fits'])} |"
            f" {_mean_std_text(entry['validation']['roc_auc'], entry['n_fits'])} |"
        )
        lines.append(row)
    return "\n".join(lines)


def context_line(comparison: Mapping[str, Any]) -> str:
    """Where the numbers come from: data, split, seeds, the post-hoc step."""
    c = comparison["context"]
    folds = (
        "the pipeline's train/validation/test split"
        if c["cv_folds"] == 0
        else f"grouped {c['cv_folds']}-fold cross-validation by sample (every sample tested once; each "
        "fold's test and validation parts hold both classes)"
    )
    return (
        f"Data `{c['data_hash']}`, {folds}; test samples never seen in training "
        f"({', '.join(c['test_samples'])}; {c['n_test_cells']} cells). Seeds {c['seeds']} for models whose "
        "fit depends on the seed, one fit per split otherwise. Mean ± sample std over fits (no ± where there "
        "was one fit). "
        + posthoc_text(c)
        + " ROC-AUC and PR-AUC do not depend on either step and lead the table."
    )


COMPARE_STAGE_ORIGIN = (
    "Written by the `compare` stage; every model saw the same folds and features. "
    "Each model is also an MLflow run (tag `run_kind=comparison`, same `comparison_id`)."
)


def _coverage_section(comparison: Mapping[str, Any]) -> list[str]:
    """The report's conformal section (nothing when the comparison measured no conformal sets)."""
    table = coverage_table(comparison)
    if table is None:
        return []
    return [
        "## Conformal prediction sets on the held-out samples",
        f"Class-conditional split-conformal sets at coverage {comparison['context']['coverage']}, "
        "calibrated on each fit's validation cells: the share of each class's test cells whose set "
        "holds their class (the guarantee assumes test cells exchangeable with validation cells; "
        "held-out samples need not be), and the share of sets with both classes or none.",
        table,
    ]


def per_fold_table(comparison: Mapping[str, Any], metric: str = "roc_auc") -> str | None:
    """Markdown table of each family's difference with the reference in ``metric``, per fold
    (each fit against the reference's fit of the same fold and seed; mean and range over seeds).

    ``None`` when the comparison has no paired record.
    """
    paired = comparison.get("paired")
    if not paired:
        return None
    folds = paired["folds"]
    lines = [
        "| model | " + " | ".join(folds) + " |",
        "|---|" + "---|" * len(folds),
    ]
    for family in ordered_families(paired["families"]):
        fits = paired["families"][family]["per_fit"]
        cells = []
        for fold in folds:
            values = [f[metric] for f in fits if f["fold"] == fold]
            spread = f" ({min(values):+.3f} to {max(values):+.3f})" if len(values) > 1 else ""
            cells.append(f"{sum(values) / len(values):+.3f}{spread}")
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _per_fold_section(comparison: Mapping[str, Any]) -> list[str]:
    """The report's per-fold differences (nothing without a paired record)."""
    tables = {m: per_fold_table(comparison, m) for m in PAIRED_METRICS}
    if any(t is None for t in tables.values()):
        return []
    reference = comparison["paired"]["reference"]
    out = ["## Differences with the reference, fold by fold"]
    for metric, table in tables.items():
        out += [
            f"{HEADERS[metric]} of each fit minus the {reference}'s fit of the same fold and seed; "
            "mean over seeds, range in brackets.",
            table,
        ]
    return out


def comparison_markdown(
    comparison: Mapping[str, Any], per_sample: pd.DataFrame, origin: str = COMPARE_STAGE_ORIGIN
) -> str:
    """The full ``reports/comparison.md`` (``origin``: one sentence on what produced it)."""
    models = comparison["models"]
    sample_rows = [
        "| model | sample | truth | called persister | mean probability | culture called right |",
        "|---|---|---|---|---|---|",
    ]
    for row in per_sample.itertuples(index=False):
        sample_rows.append(
            f"| {row.model} | {row.sample} | {row.sample_label} | {row.called_persister_fraction:.1%} | "
            f"{row.mean_probability:.3f} | {'yes' if row.sample_correct else '**no**'} |"
        )
    legend = "\n".join(f"- `{k}`: {DESCRIPTIONS[k]}" for k in ordered_families(models) if k in DESCRIPTIONS)
    return (
        "\n\n".join(
            [
                "# Model comparison on held-out samples",
                origin,
                context_line(comparison),
                results_table(comparison),
                paired_line(comparison),
                "## What each model reads, and where it is cut",
                reads_table(comparison),
                legend,
                "## Does the CNN-LSTM's sequence reading of PCA components matter?",
                premise_summary(comparison),
                *_per_fold_section(comparison),
                *_coverage_section(comparison),
                "## Per held-out sample",
                "Cell probabilities averaged over seeds; "
                "a culture is called persister when most of its cells are.",
                "\n".join(sample_rows),
            ]
        )
        + "\n"
    )
