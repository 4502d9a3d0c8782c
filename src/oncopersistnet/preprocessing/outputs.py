"""The preprocess stage's outputs read back: the split of every cell, one split's cells, the summary.

Several stages (compare, explain, export, register) start from the validated raw
counts of one split rather than from the PCA features; they read them here, so
the split table is interpreted, and a stale one refused, in one place.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from oncopersistnet.data.cells import Cells
from oncopersistnet.data.hdf5 import read_h5ad
from oncopersistnet.errors import InputDataError
from oncopersistnet.paths import ProjectPaths


def read_split_table(paths: ProjectPaths, cell_ids: pd.Index) -> np.ndarray:
    """The preprocess stage's split name of every cell in ``cell_ids``."""
    table = pd.read_csv(paths.split_table, dtype=str).set_index("cell_id")
    missing = cell_ids.difference(table.index)
    if len(missing):
        raise InputDataError(
            f"{paths.split_table}: {len(missing)} cells of {paths.validated} have no split "
            f"(e.g. {missing[0]})"
        )
    return table.loc[cell_ids, "split"].to_numpy()


def read_split_cells(paths: ProjectPaths, split: str, limit: int | None = None) -> Cells:
    """Raw counts (CSR), binary labels, samples, cell ids and genes of one split of the validated data."""
    adata = read_h5ad(paths.validated)
    mask = read_split_table(paths, adata.obs_names) == split
    subset = adata[mask]
    if limit is not None:
        subset = subset[:limit]
    return Cells.from_anndata(subset)


def read_preprocess_summary(paths: ProjectPaths) -> dict:
    """The preprocess stage's ``summary.json`` (data hash, per-split cells and samples)."""
    try:
        return json.loads(paths.preprocess_summary.read_text())
    except (OSError, ValueError) as exc:
        raise InputDataError(
            f"{paths.preprocess_summary}: missing or unreadable; run the preprocess stage first"
        ) from exc
