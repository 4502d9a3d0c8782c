"""Does the out-of-distribution flag mean something? Its rate on cells like and unlike the training data.

The deployed ONNX model scores each dataset exactly as ``oncopersistnet predict`` would
(same gene matching, signal floors and conformal rule, through
:func:`~oncopersistnet.inference.predict.score_chunks`), except that no minimum gene overlap
stops it: the point is to see what the flag does on data that shares few genes. A flag worth
having stays near its nominal rate (``1 - export.ood_quantile``) on held-out cells of the
training world and rises on another world and on real cells of another study.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from oncopersistnet.data.labels import PERSISTER
from oncopersistnet.evaluation.plots import new_figure, save_figure
from oncopersistnet.inference.align import match_genes
from oncopersistnet.inference.calls import Calls, CallTally, DecisionRule
from oncopersistnet.inference.model import OnnxPersisterModel
from oncopersistnet.inference.predict import Scoring, score_chunks
from oncopersistnet.inference.signal import NO_CALL, SignalFloors


@dataclass(frozen=True)
class TrustDataset:
    """Cells to score: raw counts over ``genes``, and what they are."""

    key: str  # same_world, other_world or external: the metrics file's and MLflow's name
    name: str
    counts: sparse.spmatrix | np.ndarray
    genes: np.ndarray
    description: str


def control_for(same: TrustDataset, other: TrustDataset, measured: np.ndarray) -> TrustDataset:
    """``same``'s cells with only the genes ``other`` measured (``measured``: gene names): what the
    flag does on cells like the training data with the other dataset's panel, so that the
    other dataset's rate is read against missing genes alone."""
    keep = np.isin(same.genes, measured)
    return TrustDataset(
        f"{other.key}_control",
        f"control for {other.name}",
        same.counts[:, keep],
        same.genes[keep],
        f"{same.name} with only the {int(keep.sum()):,} model genes {other.name} measured",
    )


def score_dataset(
    model: OnnxPersisterModel, dataset: TrustDataset, *, rule: DecisionRule, floors: SignalFloors
) -> tuple[Calls, dict[str, Any], np.ndarray]:
    """Every cell's answers, the dataset's figures (gene overlap, the share of each answer, the
    flagged share among called cells, the median distance) and the model genes it measured."""
    match = match_genes(
        dataset.genes, model.genes, min_fraction=0.0, source=dataset.name, selected_genes=model.selected_genes
    )
    scoring = Scoring(model, match, rule, True, dataset.name, floors)
    cell_ids = np.array([f"{dataset.name}-{i}" for i in range(dataset.counts.shape[0])])
    chunks = score_chunks(
        dataset.counts, scoring, cell_ids=cell_ids, genes=dataset.genes, chunk_size=5000, progress=False
    )
    calls = Calls.concat([part for _, part in chunks])
    tally = CallTally()
    tally.add(calls)
    called = calls.predicted_label != NO_CALL
    n_called = int(called.sum())
    figures = {
        "name": dataset.name,
        "description": dataset.description,
        "cells": len(calls),
        "called_cells": n_called,
        "gene_fraction": match.fraction,
        "selected_gene_fraction": match.n_selected_matched / max(match.n_selected, 1),
        "no_call_fraction": tally.counts[NO_CALL] / max(len(calls), 1),
        "ood_fraction_of_called": float(calls.out_of_distribution[called].mean())
        if n_called
        else float("nan"),
        "uncertain_fraction_of_called": tally.counts["uncertain"] / n_called if n_called else float("nan"),
        "persister_fraction_of_called": tally.counts[PERSISTER] / n_called if n_called else float("nan"),
        "median_ood_distance": float(np.nanmedian(calls.ood_distance)) if n_called else float("nan"),
    }
    return calls, figures, np.asarray(model.genes)[match.present]


def plot_distances(
    distances: Mapping[str, np.ndarray], *, threshold: float, nominal: float, path: Path
) -> Path:
    """Histogram of each dataset's distances with the flag's threshold: the picture of
    how far the training world's held-out cells sit from cells of other worlds and studies."""
    fig = new_figure(figsize=(7, 4))
    ax = fig.subplots()
    finite = [d[np.isfinite(d)] for d in distances.values()]
    upper = max([threshold * 1.5] + [float(np.quantile(d, 0.995)) for d in finite if d.size])
    lower = min([threshold * 0.5] + [float(d.min()) for d in finite if d.size])
    bins = np.linspace(lower, upper, 70)
    for (name, _), values in zip(distances.items(), finite, strict=True):
        flagged = float((values > threshold).mean()) if values.size else float("nan")
        ax.hist(np.clip(values, None, upper), bins=bins, alpha=0.55, label=f"{name}: {flagged:.1%} flagged")
    ax.axvline(
        threshold, color="black", linestyle="--", label=f"threshold {threshold:.2f} ({nominal:.0%} nominal)"
    )
    ax.set(
        xlabel="distance to the training cells (1 = a typical training cell; clipped at the 99.5th pct.)",
        ylabel="cells",
        title="Out-of-distribution flag of the deployed model",
    )
    ax.legend(fontsize="small", frameon=False)
    fig.tight_layout()
    return save_figure(fig, path)
