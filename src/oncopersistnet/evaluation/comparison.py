"""Run every model family on the same folds and seeds, and summarise mean ± std.

A single number from a single seed on one split decides nothing, so each family
is fitted ``n_seeds`` times (seeds ``train.seed``, ``train.seed + 1``, ...) on
every fold. Families whose result cannot depend on the seed (``seeded = False``)
are fitted once per fold; their spread comes from the folds alone. Every fit's
probability goes through the same post-hoc step (:mod:`~oncopersistnet.evaluation.posthoc`)
before it is scored, so thresholded figures compare models, not calibration schemes.

With a ``coverage``, every fit also gets class-conditional conformal prediction sets
(:mod:`oncopersistnet.inference.conformal`) calibrated on its own validation cells and
judged on its test cells: does each family's stated coverage hold on unseen samples?
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from oncopersistnet.config import Params
from oncopersistnet.evaluation.candidates import make_candidate
from oncopersistnet.evaluation.fits import FitResult
from oncopersistnet.evaluation.folds import Fold
from oncopersistnet.evaluation.metrics import METRIC_NAMES, classification_metrics, per_sample_table
from oncopersistnet.evaluation.paired import paired_comparison
from oncopersistnet.evaluation.posthoc import PostHoc
from oncopersistnet.inference.conformal import COVERAGE_FIGURES, ConformalCalibration, held_out_report

logger = logging.getLogger(__name__)

#: The family every other is compared with, pair by pair (the deployed network).
REFERENCE_FAMILY = "cnn_lstm"

#: What each fit reports on its validation cells: the threshold-free figures (a threshold chosen
#: on those cells would flatter them), for model selection and ``dvc exp`` sweeps.
VALIDATION_METRICS = ("roc_auc", "pr_auc", "brier")


def seeds_for(params: Params) -> list[int]:
    """The seeds of the comparison; the first is the deployed model's ``train.seed``."""
    return [params.train.seed + i for i in range(params.compare.n_seeds)]


def fit_one(family: str, fold: Fold, seed: int, *, params: Params, coverage: float | None) -> FitResult:
    """Fit ``family`` on ``fold`` at ``seed``, apply the common post-hoc step (fitted on the fold's
    validation cells) and score the test cells at the validation-chosen threshold."""
    started = time.perf_counter()
    candidate = make_candidate(family, params, seed).fit(fold)
    test, val = fold.features["test"], fold.features["val"]
    val_scores = candidate.log_odds(fold, "val")
    posthoc = PostHoc.fit(
        val_scores,
        val.y,
        method=params.compare.calibration,
        rule=params.compare.threshold_rule,
        fixed_threshold=params.evaluate.threshold,
    )
    probability = posthoc.probability(candidate.log_odds(fold, "test"))
    val_probability = posthoc.probability(val_scores)
    bins = params.evaluate.calibration_bins
    result = FitResult(
        family=family,
        fold=fold.name,
        seed=seed,
        metrics=classification_metrics(test.y, probability, posthoc.threshold, n_bins=bins),
        probability=probability,
        y=test.y,
        samples=test.samples,
        seconds=time.perf_counter() - started,
        hyperparameters=candidate.hyperparameters(),
        details=candidate.details(),
        posthoc=posthoc.as_dict(),
        validation={
            k: v
            for k, v in classification_metrics(val.y, val_probability, posthoc.threshold, n_bins=bins).items()
            if k in VALIDATION_METRICS
        },
        view=candidate.view,
        genes_read=np.asarray(fold.genes)[candidate.genes_read(fold)].astype(str),
    )
    if coverage is not None:
        calibration = ConformalCalibration.fit(val_probability, val.y)
        result.conformal = held_out_report(calibration, probability, test.y, coverage=coverage)
    return result


def run_comparison(
    folds: Sequence[Fold],
    params: Params,
    families: Sequence[str] | None = None,
    *,
    coverage: float | None = None,
    on_result: Callable[[FitResult], None] | None = None,
    progress: bool = True,
) -> list[FitResult]:
    """Fit and test every family on every fold (and seed, where seeds matter), by :func:`fit_one`.

    ``coverage``: also report conformal sets at this coverage (``FitResult.conformal``),
    calibrated on the validation cells' post-hoc probabilities.
    """
    families = list(params.compare.models if families is None else families)
    seeds = seeds_for(params)
    plan = []
    for family in families:
        seeded = make_candidate(family, params, seeds[0]).seeded
        for fold in folds:
            for seed in seeds if seeded else seeds[:1]:
                plan.append((family, fold, seed))
    results: list[FitResult] = []
    bar = tqdm(plan, desc="comparing models", unit="fit", disable=not progress)
    for family, fold, seed in bar:
        bar.set_postfix(model=family, fold=fold.name, seed=seed)
        result = fit_one(family, fold, seed, params=params, coverage=coverage)
        results.append(result)
        if on_result is not None:
            on_result(result)
    bar.close()
    return results


def _mean_std(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample std (ddof=1; 0 for one value) of the finite ``values``; NaN mean if none."""
    array = np.array(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    return {
        "mean": float(finite.mean()) if finite.size else float("nan"),
        "std": float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
    }


def _genes_entry(mine: Sequence[FitResult], planted: Collection[str] | None) -> dict[str, Any]:
    """What a family reads: its view, genes per fit (mean over fits) and, with a planted truth, how
    many of the planted genes are among them."""
    entry: dict[str, Any] = {
        "view": mine[0].view,
        "genes_read": float(np.mean([len(r.genes_read) for r in mine])),
    }
    if planted is not None:
        entry["planted_read"] = float(np.mean([len(set(r.genes_read) & set(planted)) for r in mine]))
        entry["planted_total"] = len(planted)
    return entry


def summarize(
    results: Sequence[FitResult], *, planted: Collection[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Per family: mean, sample std (ddof=1; 0 for one fit) and number of fits of every metric, of
    the validation-chosen threshold and the validation figures, what it reads (``genes``; with
    the ``planted`` genes of simulated data, how many of them), and every conformal figure (under
    ``conformal``, with the nominal coverage) where fits have them.

    Timings stay out (they are logged to MLflow): this goes into a git-tracked
    metrics file, where the same params must give the same content.
    """
    summary: dict[str, dict[str, Any]] = {}
    for family in dict.fromkeys(r.family for r in results):
        mine = [r for r in results if r.family == family]
        entry: dict[str, Any] = {
            "n_fits": len(mine),
            "seeds": sorted({r.seed for r in mine}),
            "folds": sorted({r.fold for r in mine}),
            "genes": _genes_entry(mine, planted),
            "threshold": _mean_std([r.threshold for r in mine]),
        }
        for name in METRIC_NAMES:
            entry[name] = _mean_std([r.metrics[name] for r in mine])
        entry["validation"] = {
            name: _mean_std([r.validation[name] for r in mine]) for name in VALIDATION_METRICS
        }
        conformal = [r.conformal for r in mine if r.conformal]
        if conformal:
            entry["conformal"] = {"coverage": conformal[0]["coverage"]} | {
                name: _mean_std([c[name] for c in conformal]) for name in COVERAGE_FIGURES
            }
        summary[family] = entry
    return summary


def comparison_summary(
    results: Sequence[FitResult],
    folds: Sequence[Fold],
    params: Params,
    *,
    data_hash: str,
    planted: Collection[str] | None = None,
) -> dict[str, Any]:
    """What ``metrics/comparison.json`` holds.

    Per-model summaries, every fit (with its conformal figures, where measured), the
    permutation figures, the paired comparison of every family with :data:`REFERENCE_FAMILY`
    (:mod:`~oncopersistnet.evaluation.paired`; absent when the reference was not fitted), the
    context (the post-hoc step's settings; the conformal sets' nominal coverage, where measured).
    ``planted``: the genes the simulator planted, on simulated data (how many each family reads).
    """
    paired = paired_comparison(
        results,
        reference=REFERENCE_FAMILY,
        resamples=params.compare.bootstrap_resamples,
        seed=params.compare.bootstrap_seed,
        level=params.compare.interval_level,
    )
    coverage = next((r.conformal["coverage"] for r in results if r.conformal), None)
    return {
        "models": summarize(results, planted=planted),
        "fits": [
            {"model": r.family, "fold": r.fold, "seed": r.seed, "threshold": r.threshold}
            | {m: r.metrics[m] for m in ("f1", "roc_auc", "pr_auc", "brier")}
            | ({"conformal": {k: r.conformal[k] for k in COVERAGE_FIGURES}} if r.conformal else {})
            for r in results
        ],
        "permutations": [
            {"seed": r.seed, "fold": r.fold, "roc_auc": r.metrics["roc_auc"], "f1": r.metrics["f1"]}
            for r in results
            if r.family == "cnn_lstm_permuted"
        ],
        **({"paired": paired} if paired is not None else {}),
        "context": {
            "data_hash": data_hash,
            "cv_folds": params.compare.cv_folds,
            "seeds": seeds_for(params),
            "class_weight": params.compare.class_weight,
            "calibration": params.compare.calibration,
            "threshold_rule": params.compare.threshold_rule,
            **(
                {"fixed_threshold": params.evaluate.threshold}
                if params.compare.threshold_rule == "fixed"
                else {}
            ),
            **({"coverage": coverage} if coverage is not None else {}),
            "test_samples": sorted({s for f in folds for s in f.test_samples}),
            "n_test_cells": int(sum(len(f.features["test"].y) for f in folds)),
        },
    }


def sample_level_table(results: Sequence[FitResult]) -> pd.DataFrame:
    """Per family and held-out sample: probabilities and validation-chosen thresholds averaged over
    seeds, then called per sample."""
    rows = []
    for family in dict.fromkeys(r.family for r in results):
        for fold in dict.fromkeys(r.fold for r in results if r.family == family):
            mine = [r for r in results if r.family == family and r.fold == fold]
            probability = np.mean([r.probability for r in mine], axis=0)
            threshold = float(np.mean([r.threshold for r in mine]))
            table = per_sample_table(mine[0].y, probability, mine[0].samples, threshold=threshold)
            table.insert(0, "model", family)
            rows.append(table)
    return pd.concat(rows, ignore_index=True)
