"""From per-cell attributions to a per-gene table and ranked gene lists.

A single cell's attributions are noisy (a few hundred counts per cell, most
genes at zero); what a reader wants is which genes the model leans on for each
class. So per gene: the mean attribution over the cells of each class (signed:
in persister cells a positive mean pushes them towards "persister"; in
non-persister cells a negative mean pushes them away from it) and the mean
absolute attribution over all cells (how much the gene moves the logit,
whatever the direction), which gives the global ranking.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from oncopersistnet.explain.attribution import Attributions

#: Columns of the per-gene table, in order
#: (``reports/attributions.csv``, ``oncopersistnet explain --output``).
TABLE_COLUMNS = (
    "rank",
    "mean_abs_attribution",
    "mean_attribution_persister",
    "mean_attribution_non_persister",
    "mean_path_gradient",
    "mean_expression_persister",
    "mean_expression_non_persister",
)


def _class_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Column means over ``mask`` rows; NaN (not 0) when the class has no cell, so it is never ranked."""
    if not mask.any():
        return np.full(values.shape[1], np.nan)
    return values[mask].mean(axis=0)


def gene_table(
    attributions: Attributions, is_persister: np.ndarray, expression: np.ndarray | None = None
) -> pd.DataFrame:
    """One row per gene the model reads, ranked by mean |attribution| (rank 1 = most influential).

    ``is_persister``: the class of each cell (true labels, or the model's calls
    when there are none). ``mean_path_gradient`` > 0 means higher expression
    moves a cell towards persister (the model's reading of the gene's direction,
    averaged over cells). ``expression`` (cells x selected genes, log-normalised)
    adds per-class mean expression, for a reader checking a gene by eye.
    """
    is_persister = np.asarray(is_persister, dtype=bool)
    values = attributions.values
    if is_persister.shape != (values.shape[0],):
        raise ValueError(
            f"{is_persister.shape[0] if is_persister.ndim else 0} class labels for {values.shape[0]} cells"
        )
    table = pd.DataFrame(
        {
            "mean_abs_attribution": np.abs(values).mean(axis=0)
            if values.shape[0]
            else np.zeros(values.shape[1]),
            "mean_attribution_persister": _class_mean(values, is_persister),
            "mean_attribution_non_persister": _class_mean(values, ~is_persister),
            "mean_path_gradient": attributions.path_gradient.mean(axis=0)
            if values.shape[0]
            else np.zeros(values.shape[1]),
        },
        index=pd.Index(attributions.genes, name="gene"),
    )
    if expression is not None:
        table["mean_expression_persister"] = _class_mean(
            np.asarray(expression, dtype=np.float64), is_persister
        )
        table["mean_expression_non_persister"] = _class_mean(
            np.asarray(expression, dtype=np.float64), ~is_persister
        )
    # Stable order: by influence, ties by name, so equal inputs give byte-equal tables.
    table = table.sort_index().sort_values("mean_abs_attribution", ascending=False, kind="stable")
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table[[c for c in TABLE_COLUMNS if c in table.columns]]


def top_genes(table: pd.DataFrame, top: int) -> dict[str, list[str]]:
    """The ``top`` genes per class and overall.

    ``persister``: largest positive mean attribution in persister cells (what
    makes the model call them persisters); ``non_persister``: most negative mean
    attribution in non-persister cells (what makes it call them not);
    ``global``: largest mean |attribution| over all cells. A class list can be
    shorter than ``top`` when fewer genes push in its direction.
    """

    def ranked(column: str, sign: int) -> list[str]:
        values = table[column]
        chosen = values[(sign * values) > 0].sort_index()  # NaN (class without cells) is never > 0
        return list((sign * chosen).sort_values(ascending=False, kind="stable").index[:top])

    return {
        "persister": ranked("mean_attribution_persister", +1),
        "non_persister": ranked("mean_attribution_non_persister", -1),
        "global": list(table.index[:top]),
    }
