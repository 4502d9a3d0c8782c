"""``oncopersistnet explain``: gene-level explanations of a user's cells.

Reads any supported count format, harmonises gene names onto the model's genes
exactly as ``predict`` does (missing genes become NaN, imputed at the training
mean, which is also the IG baseline, so they get zero attribution), explains
the cells, prints the signed gene ranking and optionally writes the per-gene
table. Labels are optional: without them cells are grouped by the model's own
calls, which explains what the model does, not whether it is right.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oncopersistnet.atomic import atomic_path
from oncopersistnet.data.labels import NON_PERSISTER, PERSISTER, binary_labels, canonical_labels
from oncopersistnet.data.readers import read_counts
from oncopersistnet.errors import InputDataError
from oncopersistnet.explain.explainer import (
    Explanation,
    annotated_table,
    evenly_spaced,
    explain_cells,
    explanation_summary,
)
from oncopersistnet.explain.signatures import load_signatures
from oncopersistnet.inference.align import aligned_block, match_genes
from oncopersistnet.inference.predict import check_counts
from oncopersistnet.registry.trainable import TrainableModel

logger = logging.getLogger(__name__)


def _classes_from_labels(
    obs: Any,
    label_key: str,
    *,
    persister_values: Sequence[str],
    non_persister_values: Sequence[str],
    source: str,
) -> tuple[np.ndarray, np.ndarray]:
    """(kept cell positions, is_persister) from ``obs[label_key]``; cells with other labels are left out."""
    if label_key not in obs.columns:
        raise InputDataError(
            f"{source}: obs has no column {label_key!r} (--label-key); "
            f"columns are: {', '.join(map(str, obs.columns)) or 'none'}"
        )
    labels = obs[label_key].astype(str).to_numpy()
    mapped = canonical_labels(obs[label_key], persister_values, non_persister_values)
    known = mapped.notna().to_numpy()
    is_persister = binary_labels(mapped) == 1
    if not known.any():
        found = ", ".join(sorted(set(labels))[:5])
        raise InputDataError(
            f"{source}: no cell has a label in --persister-values {list(persister_values)} or "
            f"--non-persister-values {list(non_persister_values)} (obs[{label_key!r}] has: {found})"
        )
    if not known.all():
        logger.warning(
            "%s: %d cells with other labels in obs[%r] are left out", source, int((~known).sum()), label_key
        )
    kept = np.flatnonzero(known)
    return kept, is_persister[kept]


def explain_file(
    model: TrainableModel,
    input_path: str | Path,
    *,
    top: int,
    steps: int = 32,
    max_cells: int = 1000,
    label_key: str | None = None,
    persister_values: Sequence[str] = (PERSISTER,),
    non_persister_values: Sequence[str] = (NON_PERSISTER,),
    threshold: float = 0.5,
    min_gene_fraction: float = 0.5,
    counts_source: str = "auto",
    orientation: str = "auto",
    output: str | Path | None = None,
) -> tuple[Explanation, dict[str, Any]]:
    """Explain up to ``max_cells`` cells of ``input_path``; write the per-gene CSV to ``output`` if given."""
    input_path = Path(input_path)
    adata = read_counts(input_path, counts_source=counts_source, orientation=orientation)
    pre = model.preprocessor
    genes = np.asarray(adata.var_names, dtype=str)
    match = match_genes(
        genes,
        pre.genes_,
        min_fraction=min_gene_fraction,
        source=str(input_path),
        selected_genes=pre.genes_[pre.selected_],
    )
    logger.info("%s: %s", input_path, match.describe())
    if label_key is not None:
        kept, is_persister = _classes_from_labels(
            adata.obs,
            label_key,
            persister_values=persister_values,
            non_persister_values=non_persister_values,
            source=str(input_path),
        )
    else:
        kept, is_persister = np.arange(adata.n_obs), None
    if kept.size == 0:
        raise InputDataError(f"{input_path}: no cells to explain")
    spread = evenly_spaced(
        kept.size, max_cells
    )  # cells come grouped by sample: keep every sample in proportion
    chosen = kept[spread]
    if is_persister is not None:
        is_persister = is_persister[spread]
    block = adata.X[chosen]
    check_counts(block, np.asarray(adata.obs_names, dtype=str)[chosen], genes, source=str(input_path))
    counts = aligned_block(block, match)
    logger.info("integrated gradients on %d of %d cells, %d steps", chosen.size, adata.n_obs, steps)
    explanation = explain_cells(
        pre, model.network, counts, steps=steps, top=top, is_persister=is_persister, threshold=threshold
    )
    signatures = load_signatures()
    summary = explanation_summary(explanation, top, None, signatures=signatures)
    if output is not None:
        with atomic_path(output) as tmp:
            annotated_table(explanation.table, None, signatures).to_csv(tmp, float_format="%.6g")
        logger.info("wrote the per-gene table to %s", output)
    return explanation, summary


def format_top_table(explanation: Explanation, summary: dict[str, Any], top: int) -> str:
    """The signed ranking, then the signature overlaps: what the command prints.

    One ranking, the one ``metrics/explain.json``, the README and the figure
    show (:func:`~oncopersistnet.explain.aggregate.signed_table`, computed by
    :func:`~oncopersistnet.explain.explainer.explain_cells`): rank, gene, the
    way higher expression pushes a cell, and the signed mean class-contrastive
    attribution (> 0 towards persister). Not per-class columns, where the same
    up genes headed both classes and down genes appeared in neither. When the
    cells hold one class only there is nothing to contrast, so the command says
    so and lists the genes by mean |attribution| from the average training cell.
    """
    n_p = int(explanation.is_persister.sum())
    n = int(explanation.is_persister.size)
    grouped = "labels" if explanation.class_source == "labels" else "the model's calls"
    lines = [
        f"Integrated gradients of the calibrated persister logit, {n} cells "
        f"({n_p} persister, {n - n_p} non-persister, by {grouped}); "
        f"completeness gap median {summary['completeness']['median_abs_gap']:.3f}, "
        f"max {summary['completeness']['max_abs_gap']:.3f} logit",
        "",
    ]
    lines.extend(_ranking_lines(explanation.table, summary, top))
    lines.append("")
    lines.append(
        f"Published persister signatures among the top {top} genes by mean |attribution| (all cells):"
    )
    for name, overlap in summary["signatures"].items():
        found = ", ".join(overlap["overlap_genes"]) or "none"
        lines.append(
            f"  {name}: {overlap['overlap']} ({found}); "
            f"{overlap['genes_read_by_model']} of {overlap['signature_genes']} genes "
            f"read by the model, {overlap['expected_overlap']:.2f} expected by chance, "
            f"p = {overlap['p_value']:.3g}"
        )
    return "\n".join(lines)


#: The signed ranking's column headings, as printed (gene names up to 22 characters stay aligned).
SIGNED_HEADER = f"{'rank':>4}  {'gene':<22}  {'higher expression towards':<26}  {'signed attribution':>18}"


def _ranking_lines(table: pd.DataFrame, summary: dict[str, Any], top: int) -> list[str]:
    """The summary's signed ranking, top ``top`` rows; with one class, ``table``'s |attribution| order."""
    if summary.get("signed_ranking") is None:
        lines = [
            "One class only among these cells: no class-contrastive attribution, no signed ranking "
            "(that needs cells of both classes). Genes by mean |attribution| from the "
            "average training cell:",
            f"{'rank':>4}  {'gene':<22}  {'mean |attribution|':>18}",
        ]
        for i, (gene, value) in enumerate(table["mean_abs_attribution"].head(top).items(), start=1):
            lines.append(f"{i:>4}  {gene!s:<22}  {value:>18.4f}")
        return lines
    c = summary["contrastive"]
    lines = [
        "Signed ranking, class-contrastive (each class from the other class's mean cell; completeness "
        f"median gap {c['median_abs_gap']:.3f} logit): mean |attribution| signed by the way the model "
        "reads the gene, > 0 towards persister",
        SIGNED_HEADER,
    ]
    for rank, row in enumerate(summary["signed_ranking"][:top], start=1):
        lines.append(
            f"{rank:>4}  {row['gene']:<22}  {row['higher_expression_towards']:<26}  "
            f"{row['signed_attribution']:>+18.4f}"
        )
    return lines
