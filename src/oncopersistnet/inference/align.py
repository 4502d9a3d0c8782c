"""Align an input's genes to the model's gene list.

The exported graph takes counts over exactly the model's genes in the model's
order. Genes the input lacks become NaN (imputed by the graph with training
means); genes the model does not know are ignored. Too few matches means the
input is probably in another namespace or species, and a prediction would be
mostly imputed guesswork, so it stops with the figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from oncopersistnet.errors import InputDataError


@dataclass(frozen=True)
class GeneMatch:
    """Where each model gene sits in the input (-1 = missing)."""

    input_index: np.ndarray
    n_model_genes: int

    @property
    def n_matched(self) -> int:
        """How many model genes the input provides."""
        return int((self.input_index >= 0).sum())

    @property
    def fraction(self) -> float:
        """Matched fraction of the model's genes."""
        return self.n_matched / self.n_model_genes if self.n_model_genes else 0.0

    def describe(self) -> str:
        """``1,934 of 2,000 model genes found (96.7%)``."""
        return f"{self.n_matched:,} of {self.n_model_genes:,} model genes found ({self.fraction:.1%})"


def match_genes(
    input_genes: Sequence[str], model_genes: Sequence[str], min_fraction: float = 0.0, source: str = "input"
) -> GeneMatch:
    """Map model genes to input columns; raise if fewer than ``min_fraction`` match.

    Duplicated input gene names are ambiguous: the first occurrence is used.
    """
    position: dict[str, int] = {}
    for i, gene in enumerate(map(str, input_genes)):
        position.setdefault(gene, i)
    index = np.array([position.get(str(gene), -1) for gene in model_genes], dtype=np.int64)
    match = GeneMatch(input_index=index, n_model_genes=len(model_genes))
    if match.fraction < min_fraction:
        hint = ""
        sample = [str(g) for g in list(input_genes)[:3]]
        if any(g.upper().startswith("ENS") for g in sample) and not any(str(g).upper().startswith("ENS") for g in list(model_genes)[:3]):
            hint = " The input looks like Ensembl IDs while the model uses gene symbols."
        raise InputDataError(
            f"{source}: only {match.describe()}; at least {min_fraction:.0%} are required "
            f"(input genes look like: {', '.join(sample)}).{hint}"
        )
    return match


def aligned_block(block: np.ndarray, match: GeneMatch) -> np.ndarray:
    """Dense float32 ``cells x model genes`` with NaN where the input lacks a gene."""
    out = np.full((block.shape[0], match.n_model_genes), np.nan, dtype=np.float32)
    present = match.input_index >= 0
    out[:, present] = block[:, match.input_index[present]]
    return out
