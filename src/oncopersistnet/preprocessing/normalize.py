"""Library-size normalisation and log1p, identical for sparse training data and
dense prediction input with missing genes.

Missing genes arrive as NaN (the model's gene list is wider than the input's);
they count as zero towards the library size and stay NaN so that mean
imputation, later, can fill them. The exported ONNX graph does exactly the same.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse


def library_sizes(counts: sparse.spmatrix | np.ndarray) -> np.ndarray:
    """Total counts per cell, NaN counted as zero, floored at 1 so empty cells stay finite."""
    if sparse.issparse(counts):
        totals = np.asarray(counts.sum(axis=1)).ravel().astype(np.float64)
    else:
        totals = np.nansum(np.asarray(counts, dtype=np.float64), axis=1)
    return np.maximum(totals, 1.0)


def log_normalize(counts: sparse.spmatrix | np.ndarray, target_sum: float) -> sparse.csr_matrix | np.ndarray:
    """``log1p(counts / library_size * target_sum)``; sparse stays sparse (CSR)."""
    scale = target_sum / library_sizes(counts)
    if sparse.issparse(counts):
        out = sparse.csr_matrix(counts, dtype=np.float64, copy=True)
        out.data *= np.repeat(scale, np.diff(out.indptr))
        np.log1p(out.data, out=out.data)
        return out
    dense = np.asarray(counts, dtype=np.float64) * scale[:, None]
    return np.log1p(dense)
