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
    confusion_matrix,
    f1_score,
    matthews_corrcoef,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from oncopersistnet import NON_PERSISTER, PERSISTER

METRIC_NAMES = (
    "accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "balanced_accuracy", "mcc",
)


def classification_metrics(y_true: np.ndarray, probability: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Threshold metrics at ``threshold`` and ranking metrics on the probabilities.

    ROC-AUC and PR-AUC are NaN when only one class is present (undefined, not 0).
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
    }


def curve_tables(
    y_true: np.ndarray, probability: np.ndarray, model: str, threshold: float = 0.5
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
    return confusion_matrix(np.asarray(y_true).astype(int), (np.asarray(probability) >= threshold).astype(int), labels=[0, 1])
