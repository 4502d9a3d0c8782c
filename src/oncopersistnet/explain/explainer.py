"""One call from counts to a gene-level explanation: what the stage and the CLI share.

The stage explains held-out test cells with their true labels and scores the
result against the planted truth and the published signatures; the CLI
explains a user's cells, by their labels when given and otherwise by the
model's own calls. Both go through :func:`explain_cells` and
:func:`explanation_summary`, so the numbers in ``metrics/explain.json`` and on
a user's terminal mean the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from oncopersistnet.explain.aggregate import gene_table, signed_ranking, signed_table, top_genes
from oncopersistnet.explain.attribution import (
    Attributions,
    attention_by_position,
    contrastive_gradients,
    deployed_graph,
    integrated_gradients,
)
from oncopersistnet.explain.signatures import Signature, signature_overlaps
from oncopersistnet.explain.truth import planted_recovery, planted_signs
from oncopersistnet.model.network import PersisterNetwork
from oncopersistnet.preprocessing.transformer import CellPreprocessor


@dataclass(frozen=True)
class Explanation:
    """Attributions of a set of cells, aggregated per gene and per class."""

    attributions: Attributions
    table: pd.DataFrame
    top: dict[str, list[str]]
    is_persister: np.ndarray
    class_source: str  # "labels" or "predicted" (the model's calls at the threshold)
    attention: np.ndarray | None  # cells x positions, attention networks only
    attention_components: list[tuple[int, ...]] | None
    contrast: Attributions | None = None  # each class from the other's mean cell; None with one class


def evenly_spaced(n_total: int, n_max: int) -> np.ndarray:
    """At most ``n_max`` indices spread evenly over ``range(n_total)``.

    Cells come grouped by sample; taking the first ``n_max`` would explain one
    sample and miss the rest. Evenly spaced indices keep every sample in
    proportion and need no random seed.
    """
    if n_total <= n_max:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, n_max).round().astype(np.int64))


def explain_cells(
    preprocessor: CellPreprocessor,
    network: PersisterNetwork,
    counts: np.ndarray,
    *,
    steps: int,
    top: int,
    is_persister: np.ndarray | None = None,
    threshold: float = 0.5,
) -> Explanation:
    """Attribute every cell, then rank genes per class and in one signed ranking.

    Two integrals per cell: from the average training cell (the per-class
    columns and the global ranking) and from the other class's mean cell (the
    signed ranking, :func:`~oncopersistnet.explain.aggregate.signed_table`),
    the second only when both classes have cells.

    ``counts``: raw counts over ``preprocessor.genes_`` (NaN = missing gene).
    ``is_persister``: the true class of each cell; without it cells are grouped
    by the model's call (calibrated probability >= ``threshold``), which
    explains what the model does, not whether it is right.
    """
    graph = deployed_graph(preprocessor, network)
    genes = preprocessor.genes_[preprocessor.selected_]
    attributions = integrated_gradients(graph, counts, genes, steps=steps)
    if is_persister is None:
        classes, source = attributions.probability >= threshold, "predicted"
    else:
        classes, source = np.asarray(is_persister, dtype=bool), "labels"
    table = gene_table(attributions, classes, attributions.expression)
    contrast = None
    if classes.any() and not classes.all():
        contrast = contrastive_gradients(graph, counts, genes, is_persister=classes, steps=steps)
        table = table.join(signed_table(contrast, classes))
    attention = attention_by_position(graph, counts)
    components = None
    if attention is not None and hasattr(network, "components_per_position"):
        components = [tuple(int(c) for c in group) for group in network.components_per_position()]
    return Explanation(
        attributions, table, top_genes(table, top), classes, source, attention, components, contrast
    )


def _attention_summary(explanation: Explanation) -> dict[str, Any] | None:
    """Mean attention per sequence position, per class (attention networks only)."""
    if explanation.attention is None:
        return None
    weights, classes = explanation.attention, explanation.is_persister
    out: dict[str, Any] = {
        "persister": weights[classes].mean(axis=0).round(5).tolist() if classes.any() else [],
        "non_persister": weights[~classes].mean(axis=0).round(5).tolist() if (~classes).any() else [],
    }
    if explanation.attention_components is not None:
        out["components_per_position"] = [list(c) for c in explanation.attention_components]
    return out


def _contrast_summary(explanation: Explanation, k: int, planted: pd.Series | None) -> dict[str, Any]:
    """The class-contrastive part of the summary: completeness, the signed ranking, the planted signs.

    All ``None`` when one class has no cell (nothing to contrast).
    """
    c = explanation.contrast
    if c is None:
        return {"contrastive": None, "signed_ranking": None, "planted_signs": None}
    gap = np.abs(c.completeness_gap)
    classes = explanation.is_persister
    from_non_persister = float(c.baseline_logit[classes][0])  # logit of the mean non-persister cell
    from_persister = float(c.baseline_logit[~classes][0])  # logit of the mean persister cell
    return {
        "contrastive": {
            "baseline": "each class's cells from the other class's mean log-normalised cell",
            "mean_non_persister_cell_logit": from_non_persister,
            "mean_persister_cell_logit": from_persister,
            "max_abs_gap": float(gap.max()),
            "median_abs_gap": float(np.median(gap)),
            # completeness, class by class: the genes' separations add up to this logit gap
            "logit_separation": float(
                (c.logit[classes].mean() - from_non_persister + from_persister - c.logit[~classes].mean())
                / 2.0
            ),
            "separation_sum": float(explanation.table["contrast_separation"].sum()),
        },
        "signed_ranking": signed_ranking(explanation.table, k),
        "planted_signs": planted_signs(explanation.table, planted) if planted is not None else None,
    }


def explanation_summary(
    explanation: Explanation,
    k: int,
    planted: pd.Series | None = None,
    *,
    signatures: list[Signature] | None = None,
) -> dict[str, Any]:
    """The JSON-ready result: completeness check, planted-truth and signature scores, top genes.

    ``planted`` (simulated data only): gene -> planted log fold change.
    """
    a = explanation.attributions
    gap = np.abs(a.completeness_gap)
    change = np.abs(a.logit - a.baseline_logit)
    summary: dict[str, Any] = {
        "cells": int(a.values.shape[0]),
        "persister_cells": int(explanation.is_persister.sum()),
        "classes_from": explanation.class_source,
        "genes_read": int(a.values.shape[1]),
        "top": k,
        "baseline": "training mean log-normalised expression (the model's imputation vector)",
        "baseline_logit": a.baseline_logit,
        "completeness": {
            "max_abs_gap": float(gap.max()) if gap.size else 0.0,
            "median_abs_gap": float(np.median(gap)) if gap.size else 0.0,
            "median_abs_logit_change": float(np.median(change)) if change.size else 0.0,
        },
        "top_genes": {name: genes[:k] for name, genes in explanation.top.items()},
        "planted": planted_recovery(explanation.table, planted, explanation.top, k=k)
        if planted is not None
        else None,
        "signatures": signature_overlaps(explanation.table, explanation.top, k, signatures=signatures),
    }
    summary.update(_contrast_summary(explanation, k, planted))
    attention = _attention_summary(explanation)
    if attention is not None:
        summary["attention"] = attention
    return summary


def annotated_table(
    table: pd.DataFrame, planted: pd.Series | None, signatures: list[Signature]
) -> pd.DataFrame:
    """The per-gene table with the truth beside it: planted lfc (simulated data) and signature membership."""
    out = table.copy()
    if planted is not None:
        out["planted_lfc"] = planted.reindex(out.index).fillna(0.0).astype(float)
    membership = {g: [] for g in out.index}
    for signature in signatures:
        for gene, direction in signature.direction.items():
            if gene in membership:
                membership[gene].append(f"{signature.name}:{direction}")
    out["signatures"] = [";".join(membership[g]) for g in out.index]
    return out
