"""Align an input's genes to the model's gene list.

The exported graph takes counts over exactly the model's genes in the model's
order. Genes the input lacks become NaN (imputed by the graph with training
means); genes the model does not know are ignored. Two fractions matter: of all
the model's genes (they set each cell's library size) and of the genes the model
actually reads after selection (the informative ones). Too few of either means
the input is probably in another namespace or panel, and a prediction would be
mostly imputed guesswork, so it stops with the figures.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from oncopersistnet.errors import InputDataError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneMatch:
    """Where each model gene sits in the input (-1 = missing)."""

    input_index: np.ndarray
    n_model_genes: int
    n_selected: int
    n_selected_matched: int

    @property
    def n_matched(self) -> int:
        """How many model genes the input provides."""
        return int((self.input_index >= 0).sum())

    @property
    def fraction(self) -> float:
        """Matched fraction of the model's genes."""
        return self.n_matched / self.n_model_genes if self.n_model_genes else 0.0

    @property
    def selected_fraction(self) -> float:
        """Matched fraction of the genes the model reads after gene selection."""
        return self.n_selected_matched / self.n_selected if self.n_selected else 0.0

    def describe(self) -> str:
        """``1,934 of 2,000 model genes found (96.7%); 490 of 500 selected genes (98.0%)``."""
        return (
            f"{self.n_matched:,} of {self.n_model_genes:,} model genes found ({self.fraction:.1%}); "
            f"{self.n_selected_matched:,} of {self.n_selected:,} selected genes ({self.selected_fraction:.1%})"
        )


def match_genes(
    input_genes: Sequence[str],
    model_genes: Sequence[str],
    min_fraction: float = 0.0,
    source: str = "input",
    selected_genes: Sequence[str] | None = None,
) -> GeneMatch:
    """Map model genes to input columns; raise if fewer than ``min_fraction`` match.

    ``min_fraction`` applies to all model genes and to ``selected_genes`` (the
    genes the model reads; all model genes when not given). Duplicated input gene
    names are ambiguous: the first occurrence is used and a warning says how many.
    """
    names = [str(g) for g in input_genes]
    position: dict[str, int] = {}
    for i, gene in enumerate(names):
        position.setdefault(gene, i)
    if len(position) < len(names):
        logger.warning("%s: %d duplicated gene names; the first occurrence of each is used", source, len(names) - len(position))
    index = np.array([position.get(str(gene), -1) for gene in model_genes], dtype=np.int64)
    selected = [str(g) for g in (selected_genes if selected_genes is not None else model_genes)]
    match = GeneMatch(
        input_index=index,
        n_model_genes=len(model_genes),
        n_selected=len(selected),
        n_selected_matched=sum(g in position for g in selected),
    )
    if min(match.fraction, match.selected_fraction) < min_fraction:
        hint = ""
        sample = names[:3]
        if any(g.upper().startswith("ENS") for g in sample) and not any(str(g).upper().startswith("ENS") for g in list(model_genes)[:3]):
            hint = " The input looks like Ensembl IDs while the model uses gene symbols."
        raise InputDataError(
            f"{source}: only {match.describe()}; at least {min_fraction:.0%} of each are required "
            f"(input genes look like: {', '.join(sample)}).{hint}"
        )
    return match


def aligned_block(block: np.ndarray | sparse.spmatrix, match: GeneMatch) -> np.ndarray:
    """Dense float32 ``cells x model genes`` with NaN where the input lacks a gene.

    Only the model's columns are densified, so an input with 30,000 genes costs
    no more memory per cell than one with exactly the model's genes.
    """
    out = np.full((block.shape[0], match.n_model_genes), np.nan, dtype=np.float32)
    present = match.input_index >= 0
    columns = match.input_index[present]
    if sparse.issparse(block):
        out[:, present] = sparse.csr_matrix(block)[:, columns].toarray()
    else:
        out[:, present] = np.asarray(block)[:, columns]
    return out
