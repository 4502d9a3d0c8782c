"""What the raw dataset looks like, measured on the cells themselves (``metrics/data.json``).

The README's description of the default dataset (size, sparsity, library sizes,
samples per condition, persister share, label noise) is rendered from this file, so
it describes the data the pipeline actually read, not data someone remembers. On
simulated data the culture's condition is the simulator's truth (treated cultures
hold persisters): a label that disagrees with it is one the simulator flipped
(``simulate.label_noise``), so the flips are counted from the data alone.
"""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np
from scipy import sparse

from oncopersistnet.data.labels import PERSISTER

#: The condition of the simulator's untreated cultures; every other condition is treated.
UNTREATED_CONDITION = "day0"


def _percentiles(values: np.ndarray, points: tuple[float, ...]) -> dict[str, float]:
    return {f"p{p:g}": float(np.percentile(values, p)) for p in points}


def _per_cell(adata: ad.AnnData) -> tuple[np.ndarray, np.ndarray, int]:
    """Total counts and detected genes per cell, and the matrix's non-zero entries."""
    matrix = sparse.csr_matrix(adata.X)
    matrix.eliminate_zeros()
    totals = np.asarray(matrix.sum(axis=1), dtype=np.float64).ravel()
    detected = np.diff(matrix.indptr)
    return totals, detected, int(matrix.nnz)


def _by_condition(adata: ad.AnnData) -> dict[str, dict[str, int]] | None:
    """Samples and cells per culture condition, where the data record one (the simulator does)."""
    if "condition" not in adata.obs:
        return None
    obs = adata.obs[["sample", "condition"]].astype(str)
    return {
        condition: {"samples": int(group["sample"].nunique()), "cells": len(group)}
        for condition, group in obs.groupby("condition", sort=True)
    }


def _flipped(adata: ad.AnnData, simulated: bool) -> int | None:
    """Labels that disagree with their culture's condition: the simulator's label noise."""
    if not simulated or "condition" not in adata.obs:
        return None
    treated = adata.obs["condition"].astype(str).to_numpy() != UNTREATED_CONDITION
    persister = adata.obs["label"].astype(str).to_numpy() == PERSISTER
    return int((treated != persister).sum())


def data_summary(adata: ad.AnnData) -> dict[str, Any]:
    """The figures of ``metrics/data.json`` for a labelled AnnData (``obs['label']``, ``obs['sample']``)."""
    totals, detected, nnz = _per_cell(adata)
    source = dict(adata.uns.get("source", {}))
    simulated = "simulator" in source
    persister = adata.obs["label"].astype(str).to_numpy() == PERSISTER
    return {
        "source": "simulated" if simulated else str(source.get("input", "file")),
        "simulate": {k: v for k, v in source.items() if k != "simulator"} if simulated else None,
        "cells": int(adata.n_obs),
        "genes": int(adata.n_vars),
        "zero_fraction": 1.0 - nnz / (adata.n_obs * adata.n_vars),
        "library_size": {
            "min": float(totals.min()),
            "max": float(totals.max()),
            "median": float(np.median(totals)),
            **_percentiles(totals, (5, 95)),
        },
        "genes_detected": {"min": int(detected.min()), "median": float(np.median(detected))},
        "samples": int(adata.obs["sample"].nunique()),
        "by_condition": _by_condition(adata),
        "persister_cells": int(persister.sum()),
        "persister_fraction": float(persister.mean()),
        "labels_flipped": _flipped(adata, simulated),
    }
