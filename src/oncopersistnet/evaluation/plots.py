"""PNG figures for people: ROC, precision-recall, confusion matrices, training curves.

Each figure is drawn on its own Agg canvas (:func:`new_figure`), so they work on
servers without a display, and importing this module selects no global backend
and touches no pyplot state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from oncopersistnet.atomic import atomic_path
from oncopersistnet.data.labels import LABELS


def new_figure(**options: Any) -> Figure:
    """A figure attached to its own non-interactive Agg canvas (``options``: :class:`Figure`'s).

    Not created through pyplot: nothing is registered globally, so there is no
    figure to close and no backend to choose (``matplotlib.use`` at import would
    change the backend of every program that imports the package).
    """
    figure = Figure(**options)
    FigureCanvasAgg(figure)
    return figure


def save_figure(fig: Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    return path


def plot_roc_pr(
    roc: pd.DataFrame, pr: pd.DataFrame, metrics: Mapping[str, Mapping[str, float]], *, path: Path
) -> Path:
    """ROC and PR curves of every model side by side, AUCs in the legend."""
    fig = new_figure(figsize=(10, 4.5))
    ax_roc, ax_pr = fig.subplots(1, 2)
    for model, part in roc.groupby("model", sort=False):
        ax_roc.plot(part["fpr"], part["tpr"], label=f"{model} (AUC {metrics[model]['roc_auc']:.3f})")
    ax_roc.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, held-out samples")
    for model, part in pr.groupby("model", sort=False):
        ax_pr.plot(part["recall"], part["precision"], label=f"{model} (AP {metrics[model]['pr_auc']:.3f})")
    ax_pr.set(
        xlabel="recall (persister)",
        ylabel="precision (persister)",
        title="Precision-recall, held-out samples",
    )
    for ax in (ax_roc, ax_pr):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend(loc="lower right" if ax is ax_roc else "lower left", fontsize=9)
        ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_confusion(matrices: Mapping[str, np.ndarray], path: Path) -> Path:
    """One confusion matrix per model, counts and row percentages in each cell."""
    fig = new_figure(figsize=(4.2 * len(matrices), 4))
    axes = fig.subplots(1, len(matrices), squeeze=False)
    for ax, (model, matrix) in zip(axes[0], matrices.items(), strict=True):
        ax.imshow(matrix, cmap="Blues")
        rows = matrix.sum(axis=1, keepdims=True).clip(min=1)
        for i in range(2):
            for j in range(2):
                colour = "white" if matrix[i, j] > matrix.max() / 2 else "black"
                ax.text(
                    j,
                    i,
                    f"{matrix[i, j]}\n{matrix[i, j] / rows[i, 0]:.0%}",
                    ha="center",
                    va="center",
                    color=colour,
                )
        ax.set_xticks([0, 1], LABELS)
        ax.set_yticks([0, 1], LABELS)
        ax.set(xlabel="predicted", ylabel="actual", title=model)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_training_curves(history: Sequence[Mapping[str, float]], best_epoch: int, path: Path) -> Path:
    """Train/validation loss and validation F1 / ROC-AUC per epoch; the kept epoch marked."""
    frame = pd.DataFrame(history)
    epochs = np.arange(1, len(frame) + 1)
    fig = new_figure(figsize=(10, 4))
    ax_loss, ax_metric = fig.subplots(1, 2)
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
    return save_figure(fig, path)


def plot_reliability(
    tables: Mapping[str, pd.DataFrame], metrics: Mapping[str, Mapping[str, float]], path: Path
) -> Path:
    """Reliability diagram: observed persister fraction against mean predicted probability per bin."""
    fig = new_figure(figsize=(5.5, 6.5))
    ax, ax_count = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfectly calibrated")
    width = 1.0 / max(len(tables[next(iter(tables))]) if tables else 10, 10)
    for i, (name, table) in enumerate(tables.items()):
        label = f"{name} (ECE {metrics[name]['ece']:.3f}, Brier {metrics[name]['brier']:.3f})"
        ax.plot(table["mean_predicted"], table["fraction_persister"], marker="o", label=label)
        ax_count.bar(
            table["mean_predicted"] + (i - 0.5) * width * 0.4,
            table["cells"],
            width=width * 0.4,
            alpha=0.7,
            label=name,
        )
    ax.set(
        ylabel="observed persister fraction",
        title="Calibration on held-out samples",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    ax_count.set(xlabel="predicted persister probability (bin mean)", ylabel="cells")
    ax_count.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_embedding(
    coordinates: np.ndarray,
    truth: np.ndarray,
    predicted: np.ndarray,
    *,
    path: Path,
    axis_labels: Sequence[str] = ("PC1", "PC2"),
) -> Path:
    """Test cells in 2-D, coloured by true label (left) and by predicted label (right)."""
    fig = new_figure(figsize=(10, 4.5))
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    colours = {LABELS[0]: "tab:blue", LABELS[1]: "tab:red", "uncertain": "tab:grey"}
    for ax, labels, title in ((axes[0], truth, "true label"), (axes[1], predicted, "predicted label")):
        for name, colour in colours.items():
            mask = np.asarray(labels) == name
            if mask.any():
                ax.scatter(
                    coordinates[mask, 0],
                    coordinates[mask, 1],
                    s=6,
                    alpha=0.6,
                    color=colour,
                    label=f"{name} ({mask.sum()})",
                )
        ax.set(xlabel=axis_labels[0], title=f"Held-out cells: {title}")
        ax.legend(fontsize=8, markerscale=2)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(axis_labels[1])
    fig.tight_layout()
    return save_figure(fig, path)


def plot_model_comparison(
    models: Mapping[str, Mapping[str, object]],
    path: Path,
    metrics: Sequence[str] = ("roc_auc", "f1", "brier"),
) -> Path:
    """Mean ± std of a few metrics per model as horizontal bars; easier to scan than a table."""
    names = list(models)
    fig = new_figure(figsize=(4.2 * len(metrics), 0.45 * len(names) + 1.5))
    axes = fig.subplots(1, len(metrics), sharey=True)
    for ax, metric in zip(np.atleast_1d(axes), metrics, strict=True):
        means = np.array([models[n][metric]["mean"] for n in names], dtype=float)  # type: ignore[index]
        stds = np.array([models[n][metric]["std"] for n in names], dtype=float)  # type: ignore[index]
        colours = ["tab:red" if n.startswith(("cnn_lstm", "mlp")) else "tab:blue" for n in names]
        ax.barh(names, means, xerr=stds, color=colours, alpha=0.8, capsize=3)
        for y, (m, s) in enumerate(zip(means, stds, strict=True)):
            ax.text(m + s + 0.01, y, f"{m:.3f}", va="center", fontsize=8)
        ax.set(
            title=f"{metric} ({'lower' if metric in ('brier', 'ece') else 'higher'} is better)",
            xlim=(0, 1.12),
        )
        ax.grid(axis="x", alpha=0.3)
    np.atleast_1d(axes)[0].invert_yaxis()
    fig.suptitle("Held-out samples: mean ± std over fits (red: networks, blue: baselines)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
