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


#: Columns the class-contrastive attributions add to the per-gene table.
SIGNED_COLUMNS = (
    "signed_rank",
    "higher_expression_towards",
    "signed_attribution",
    "contrast_separation",
    "contrast_attribution_persister",
    "contrast_attribution_non_persister",
)


def signed_table(contrast: Attributions, is_persister: np.ndarray) -> pd.DataFrame:
    """One signed ranking of genes from class-contrastive attributions (rank 1 = strongest).

    Why not two per-class lists of the largest attributions: against an average
    cell, a gene up in persisters sits above the mean in persister cells
    (positive attribution) and below it in non-persister cells (negative), so
    the same genes head both lists: the non-persister list is persister
    evidence seen from below the mean, not genes of the non-persister state. And
    ranking by |attribution| drops the direction, so a gene the model reads as
    "less of it means persister" (the proliferation genes) looks like any other.

    Per gene, from ``contrast`` (:func:`~oncopersistnet.explain.attribution.contrastive_gradients`):

    * ``signed_attribution``: mean over cells of ``|attribution| * sign(path gradient)``
      (= ``|x - baseline| * path gradient``): how much the gene moves the logit,
      signed by the way the model reads it: > 0 when higher expression pushes
      towards persister, < 0 when it pushes towards non-persister. The sign comes
      from the model alone (no label enters it), so it can be checked against truth.
    * ``higher_expression_towards``: that sign in words.
    * ``contrast_attribution_persister`` / ``_non_persister``: mean attribution of
      persister cells from the mean non-persister cell (> 0: the gene raises them
      towards persister) and of non-persister cells from the mean persister (< 0:
      it lowers them); ``contrast_separation`` = half their difference, the gene's
      share of the logit gap between the classes (summed over genes it is that gap).
    """
    classes = np.asarray(is_persister, dtype=bool)
    values = contrast.values
    if classes.shape != (values.shape[0],):
        raise ValueError(f"{classes.size} class labels for {values.shape[0]} cells")
    signed = (np.abs(values) * np.sign(contrast.path_gradient)).mean(axis=0)
    persister, non_persister = _class_mean(values, classes), _class_mean(values, ~classes)
    table = pd.DataFrame(
        {
            "higher_expression_towards": np.where(
                signed > 0, "persister", np.where(signed < 0, "non_persister", "neither")
            ),
            "signed_attribution": signed,
            "contrast_separation": (persister - non_persister) / 2.0,
            "contrast_attribution_persister": persister,
            "contrast_attribution_non_persister": non_persister,
        },
        index=pd.Index(contrast.genes, name="gene"),
    )
    order = table["signed_attribution"].abs().sort_index().sort_values(ascending=False, kind="stable")
    table = table.loc[order.index]
    table.insert(0, "signed_rank", np.arange(1, len(table) + 1))
    return table[list(SIGNED_COLUMNS)]


def signed_ranking(table: pd.DataFrame, top: int) -> list[dict[str, object]]:
    """The ``top`` genes of :func:`signed_table` as JSON-ready rows: gene, direction, signed attribution."""
    head = table.sort_values("signed_rank").head(top)
    return [
        {
            "gene": str(gene),
            "higher_expression_towards": str(row["higher_expression_towards"]),
            "signed_attribution": float(row["signed_attribution"]),
        }
        for gene, row in head.iterrows()
    ]
