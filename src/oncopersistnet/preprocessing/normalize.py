"""Library-size normalisation and log1p, identical for sparse training data and
dense prediction input with missing genes.

Missing genes arrive as NaN (the model's gene list is wider than the input's)
and stay NaN so that mean imputation, later, can fill them. Their counts are
unknown, not zero: a cell's library size is its total over the genes it measured
divided by the share of training counts those genes held (``gene_share``, learned
on training cells). Without that, a panel with half the genes would normalise every
measured gene about twice too high, and both the probability and the
out-of-distribution distance would be judging the panel, not the cell. A cell that
measures every gene is normalised by its plain total. The exported ONNX graph does
exactly the same.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

#: The least share of training counts a cell's measured genes may hold when its library is
#: extrapolated (a panel of genes never expressed in training would otherwise divide by ~0).
MIN_MEASURED_SHARE = 1e-3


def library_sizes(counts: sparse.spmatrix | np.ndarray, gene_share: np.ndarray | None = None) -> np.ndarray:
    """Total counts per cell, extrapolated over missing (NaN) genes by ``gene_share`` when given
    (else NaN counts as zero), floored at 1 so empty cells stay finite."""
    if sparse.issparse(counts):
        return np.maximum(np.asarray(counts.sum(axis=1)).ravel().astype(np.float64), 1.0)
    dense = np.asarray(counts, dtype=np.float64)
    totals = np.nansum(dense, axis=1)
    if gene_share is not None:
        missing_share = np.isnan(dense) @ np.asarray(gene_share, dtype=np.float64)
        totals = totals / np.maximum(1.0 - missing_share, MIN_MEASURED_SHARE)
    return np.maximum(totals, 1.0)


def gene_shares(counts: sparse.spmatrix | np.ndarray) -> np.ndarray:
    """Each gene's share of all counts of ``counts`` (training cells, no missing genes)."""
    if sparse.issparse(counts):
        totals = np.asarray(counts.sum(axis=0), dtype=np.float64).ravel()
    else:
        totals = np.nansum(np.asarray(counts, dtype=np.float64), axis=0)  # pooled studies: NaN = absent
    return totals / max(float(totals.sum()), 1.0)


def log_normalize(
    counts: sparse.spmatrix | np.ndarray, target_sum: float, gene_share: np.ndarray | None = None
) -> sparse.csr_matrix | np.ndarray:
    """``log1p(counts / library_size * target_sum)``; sparse stays sparse (CSR)."""
    scale = target_sum / library_sizes(counts, gene_share)
    if sparse.issparse(counts):
        out = sparse.csr_matrix(counts, dtype=np.float64, copy=True)
        out.data *= np.repeat(scale, np.diff(out.indptr))
        np.log1p(out.data, out=out.data)
        return out
    dense = np.asarray(counts, dtype=np.float64) * scale[:, None]
    return np.log1p(dense)
