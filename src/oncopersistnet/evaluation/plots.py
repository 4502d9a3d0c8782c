"""PNG figures for people: ROC, precision-recall, confusion matrices, training curves.

Rendered with matplotlib's non-interactive Agg backend so they work on servers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from oncopersistnet import LABELS  # noqa: E402
from oncopersistnet.atomic import atomic_path  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def plot_roc_pr(roc: pd.DataFrame, pr: pd.DataFrame, metrics: Mapping[str, Mapping[str, float]], path: Path) -> Path:
    """ROC and PR curves of every model side by side, AUCs in the legend."""
    fig, (ax_roc, ax_pr) = plt.subplots(1, 2, figsize=(10, 4.5))
    for model, part in roc.groupby("model", sort=False):
        ax_roc.plot(part["fpr"], part["tpr"], label=f"{model} (AUC {metrics[model]['roc_auc']:.3f})")
    ax_roc.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, held-out samples")
    for model, part in pr.groupby("model", sort=False):
        ax_pr.plot(part["recall"], part["precision"], label=f"{model} (AP {metrics[model]['pr_auc']:.3f})")
    ax_pr.set(xlabel="recall (persister)", ylabel="precision (persister)", title="Precision-recall, held-out samples")
    for ax in (ax_roc, ax_pr):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend(loc="lower right" if ax is ax_roc else "lower left", fontsize=9)
        ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_confusion(matrices: Mapping[str, np.ndarray], path: Path) -> Path:
    """One confusion matrix per model, counts and row percentages in each cell."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(4.2 * len(matrices), 4), squeeze=False)
    for ax, (model, matrix) in zip(axes[0], matrices.items()):
        ax.imshow(matrix, cmap="Blues")
        rows = matrix.sum(axis=1, keepdims=True).clip(min=1)
        for i in range(2):
            for j in range(2):
                colour = "white" if matrix[i, j] > matrix.max() / 2 else "black"
                ax.text(j, i, f"{matrix[i, j]}\n{matrix[i, j] / rows[i, 0]:.0%}", ha="center", va="center", color=colour)
        ax.set_xticks([0, 1], LABELS)
        ax.set_yticks([0, 1], LABELS)
        ax.set(xlabel="predicted", ylabel="actual", title=model)
    fig.tight_layout()
    return _save(fig, path)


def plot_training_curves(history: Sequence[Mapping[str, float]], best_epoch: int, path: Path) -> Path:
    """Train/validation loss and validation F1 / ROC-AUC per epoch; the kept epoch marked."""
    frame = pd.DataFrame(history)
    epochs = np.arange(1, len(frame) + 1)
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, frame["train_loss"], label="train loss")
    ax_loss.plot(epochs, frame["val_loss"], label="validation loss")
    ax_metric.plot(epochs, frame["val_f1"], label="validation F1")
    ax_metric.plot(epochs, frame["val_roc_auc"], label="validation ROC-AUC")
    for ax in (ax_loss, ax_metric):
        ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label=f"kept (epoch {best_epoch})")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    ax_loss.set(ylabel="class-weighted BCE", title="Loss")
    ax_metric.set(ylabel="score", title="Validation metrics")
    fig.tight_layout()
    return _save(fig, path)
