"""Align an input's genes to the model's gene list.

The exported graph takes counts over exactly the model's genes in the model's
order. Input names are first harmonised to the project's namespace
(:mod:`oncopersistnet.genes`: Ensembl IDs -> symbols, canonical case); input
columns that land on the same model gene are summed, as at training. Genes the
input lacks become NaN (imputed by the graph with training means); genes the
model does not know are ignored. Two fractions matter: of all the model's genes
(they set each cell's library size) and of the genes the model actually reads
after selection. Too few of either means the input is probably in another
namespace, species or panel, and a prediction would be mostly imputed
guesswork, so it stops with the figures before and after mapping.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from oncopersistnet.errors import InputDataError
from oncopersistnet.genes import HarmonizationReport, harmonize_names
from oncopersistnet.genes.harmonize import detect_namespace

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneMatch:
    """How input columns feed the model's genes."""

    selector: sparse.csr_matrix  # n_input x n_model, 1 where an input column feeds a model gene
    present: np.ndarray  # per model gene: does the input provide it?
    n_selected: int
    n_selected_matched: int
    n_matched_before_mapping: int
    harmonization: HarmonizationReport

    @property
    def n_model_genes(self) -> int:
        return int(self.present.size)

    @property
    def n_matched(self) -> int:
        """How many model genes the input provides (after mapping names)."""
        return int(self.present.sum())

    @property
    def fraction(self) -> float:
        """Matched fraction of the model's genes."""
        return self.n_matched / self.n_model_genes if self.n_model_genes else 0.0

    @property
    def selected_fraction(self) -> float:
        """Matched fraction of the genes the model reads after gene selection."""
        return self.n_selected_matched / self.n_selected if self.n_selected else 0.0

    def describe(self) -> str:
        """One line of figures, e.g. ``1,934 of 2,000 model genes found (96.7%; 0 before mapping
        names); 490 of 500 selected genes (98.0%)``."""
        return (
            f"{self.n_matched:,} of {self.n_model_genes:,} model genes found ({self.fraction:.1%}; "
            f"{self.n_matched_before_mapping:,} before mapping names); "
            f"{self.n_selected_matched:,} of {self.n_selected:,} selected genes "
            f"({self.selected_fraction:.1%})"
        )


def _likely_cause(
    input_namespace: str, model_genes: Sequence[str], *, before: int, after: int, n_model: int
) -> str:
    model_namespace = (
        "Ensembl IDs" if detect_namespace([str(g) for g in model_genes]) == "ensembl" else "gene symbols"
    )
    if input_namespace.startswith("symbol (mouse"):
        return (
            " The input's gene symbols are in mouse-style Title case (e.g. Actb) while the model was "
            "trained on human genes: another species needs ortholog mapping first."
        )
    if input_namespace == "ensembl" and model_namespace == "gene symbols":
        return (
            f" The input uses Ensembl IDs and the model uses gene symbols: {before:,} of {n_model:,} "
            f"genes matched before mapping, {after:,} after; the IDs may be from another species or "
            "annotation."
        )
    if after == 0:
        return (
            " No model gene matched at all: another species, or a gene panel that does not overlap "
            "the model's?"
        )
    return " The input may be a targeted panel or a differently annotated matrix."


def match_genes(
    input_genes: Sequence[str],
    model_genes: Sequence[str],
    *,
    min_fraction: float = 0.0,
    source: str = "input",
    selected_genes: Sequence[str] | None = None,
) -> GeneMatch:
    """Map input columns onto model genes; raise if fewer than ``min_fraction`` match.

    ``min_fraction`` applies to all model genes and to ``selected_genes`` (the
    genes the model reads; all model genes when not given).
    """
    raw = [str(g) for g in input_genes]
    mapped, report = harmonize_names(raw)
    position = {str(gene): j for j, gene in enumerate(model_genes)}
    rows = [i for i, name in enumerate(mapped) if name in position]
    cols = [position[mapped[i]] for i in rows]
    selector = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(raw), len(position))
    )
    present = np.zeros(len(position), dtype=bool)
    present[cols] = True
    if len(rows) > len(set(cols)):
        logger.warning(
            "%s: %d input columns map onto genes already present; their counts are summed",
            source,
            len(rows) - len(set(cols)),
        )
    found = set(mapped)
    selected = [str(g) for g in (selected_genes if selected_genes is not None else model_genes)]
    raw_names = set(raw)
    match = GeneMatch(
        selector=selector,
        present=present,
        n_selected=len(selected),
        n_selected_matched=sum(g in found for g in selected),
        n_matched_before_mapping=sum(str(g) in raw_names for g in model_genes),
        harmonization=report,
    )
    if min(match.fraction, match.selected_fraction) < min_fraction:
        cause = _likely_cause(
            report.namespace,
            list(model_genes),
            before=match.n_matched_before_mapping,
            after=match.n_matched,
            n_model=match.n_model_genes,
        )
        raise InputDataError(
            f"{source}: only {match.describe()}; at least {min_fraction:.0%} of each are required "
            f"(input genes look like: {', '.join(raw[:3])}).{cause}"
        )
    return match


def aligned_block(block: np.ndarray | sparse.spmatrix, match: GeneMatch) -> np.ndarray:
    """Dense float32 ``cells x model genes`` with NaN where the input lacks a gene.

    One sparse product selects, reorders and sums input columns, so an input
    with 30,000 genes costs no more memory per cell than one with the model's genes.
    """
    if sparse.issparse(block):
        out = (sparse.csr_matrix(block, dtype=np.float32) @ match.selector).toarray()
    else:
        out = np.asarray(np.asarray(block, dtype=np.float32) @ match.selector)
    out = np.asarray(out, dtype=np.float32)
    out[:, ~match.present] = np.nan
    return out
