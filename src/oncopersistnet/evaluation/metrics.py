"""Classification metrics and the curve tables behind ROC / PR / confusion plots.

Every model is scored by this one function so the names and definitions match
across the network, the baselines and the registry's promotion gate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    matthews_corrcoef,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from oncopersistnet.data.labels import NON_PERSISTER, PERSISTER

METRIC_NAMES = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "pr_auc",
    "balanced_accuracy",
    "mcc",
    "brier",
    "ece",
)
# Lower is better for these; higher for the rest.
LOWER_IS_BETTER = ("brier", "ece")


def reliability_table(y_true: np.ndarray, probability: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Equal-width probability bins: cells, mean predicted probability and observed persister fraction.

    Empty bins are left out. This is the data of a reliability diagram and of the ECE.
    """
    y_true = np.asarray(y_true).astype(float)
    probability = np.clip(np.asarray(probability, dtype=np.float64), 0.0, 1.0)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(probability, edges[1:-1], right=False), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        in_bin = index == b
        if in_bin.any():
            rows.append(
                {
                    "bin_low": edges[b],
                    "bin_high": edges[b + 1],
                    "cells": int(in_bin.sum()),
                    "mean_predicted": float(probability[in_bin].mean()),
                    "fraction_persister": float(y_true[in_bin].mean()),
                }
            )
    return pd.DataFrame(
        rows, columns=["bin_low", "bin_high", "cells", "mean_predicted", "fraction_persister"]
    )


def expected_calibration_error(y_true: np.ndarray, probability: np.ndarray, n_bins: int = 10) -> float:
    """Cell-weighted mean |observed - predicted| over equal-width bins (0 = perfectly calibrated)."""
    table = reliability_table(y_true, probability, n_bins)
    if table.empty:
        return float("nan")
    gap = (table["fraction_persister"] - table["mean_predicted"]).abs()
    return float((gap * table["cells"]).sum() / table["cells"].sum())


def classification_metrics(
    y_true: np.ndarray, probability: np.ndarray, threshold: float = 0.5, *, n_bins: int = 10
) -> dict[str, float]:
    """Threshold metrics at ``threshold``, ranking metrics and calibration on the probabilities.

    ROC-AUC and PR-AUC are NaN when only one class is present (undefined, not 0).
    Brier score and ECE judge the probabilities as probabilities (lower is better).
    """
    y_true = np.asarray(y_true).astype(int)
    probability = np.asarray(probability, dtype=np.float64)
    predicted = (probability >= threshold).astype(int)
    both = len(np.unique(y_true)) == 2
    return {
        "accuracy": float(accuracy_score(y_true, predicted)),
        "precision": float(precision_score(y_true, predicted, zero_division=0)),
        "recall": float(recall_score(y_true, predicted, zero_division=0)),
        "f1": float(f1_score(y_true, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(y_true, probability)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y_true, probability)) if both else float("nan"),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, predicted)) if both else float("nan"),
        "mcc": float(matthews_corrcoef(y_true, predicted)),
        "brier": float(brier_score_loss(y_true, np.clip(probability, 0.0, 1.0)))
        if len(y_true)
        else float("nan"),
        "ece": expected_calibration_error(y_true, probability, n_bins),
    }


def per_sample_table(
    y_true: np.ndarray, probability: np.ndarray, samples: np.ndarray, *, threshold: float = 0.5
) -> pd.DataFrame:
    """One row per held-out sample: is the culture as a whole called right?

    A sample's truth is the majority label of its cells; its call is the majority
    of the cells' predicted labels. Users judge a classifier by whether it calls a
    treated culture persister-rich, not only by cell-level scores.
    """
    frame = pd.DataFrame(
        {
            "sample": np.asarray(samples, dtype=str),
            "truth": np.asarray(y_true).astype(int),
            "probability": np.asarray(probability, dtype=np.float64),
        }
    )
    frame["called"] = (frame["probability"] >= threshold).astype(int)
    table = frame.groupby("sample", sort=True).agg(
        cells=("truth", "size"),
        true_persister_fraction=("truth", "mean"),
        called_persister_fraction=("called", "mean"),
        mean_probability=("probability", "mean"),
        cell_accuracy=(
            "truth",
            lambda t: float((t.to_numpy() == frame.loc[t.index, "called"].to_numpy()).mean()),
        ),
    )
    truth = np.where(table["true_persister_fraction"] >= 0.5, PERSISTER, NON_PERSISTER)
    call = np.where(table["called_persister_fraction"] >= 0.5, PERSISTER, NON_PERSISTER)
    table.insert(1, "sample_label", truth)
    table["sample_call"] = call
    table["sample_correct"] = truth == call
    return table.reset_index()


def curve_tables(
    y_true: np.ndarray, probability: np.ndarray, model: str, *, threshold: float = 0.5
) -> dict[str, pd.DataFrame]:
    """ROC points, PR points and per-cell confusion rows, each tagged with ``model``.

    These are the data files DVC plots read (``dvc plots show``/``diff``).
    """
    y_true = np.asarray(y_true).astype(int)
    fpr, tpr, _ = roc_curve(y_true, probability)
    precision, recall, _ = precision_recall_curve(y_true, probability)
    names = np.array([NON_PERSISTER, PERSISTER])
    return {
        "roc": pd.DataFrame({"model": model, "fpr": fpr, "tpr": tpr}),
        "pr": pd.DataFrame({"model": model, "recall": recall, "precision": precision}),
        "confusion": pd.DataFrame(
            {
                "model": model,
                "actual": names[y_true],
                "predicted": names[(np.asarray(probability) >= threshold).astype(int)],
            }
        ),
    }


def confusion_counts(y_true: np.ndarray, probability: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """2 x 2 confusion matrix, rows = truth (non-persister, persister)."""
    return confusion_matrix(
        np.asarray(y_true).astype(int), (np.asarray(probability) >= threshold).astype(int), labels=[0, 1]
    )
