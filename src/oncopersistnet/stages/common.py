"""What every stage entry shares: logging, error handling, and reading splits back."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from oncopersistnet import PERSISTER
from oncopersistnet.config import Params, load_params
from oncopersistnet.data.load import read_h5ad
from oncopersistnet.errors import InputDataError, OncoPersistNetError
from oncopersistnet.logging_setup import configure_logging
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.tracking import disable_telemetry

logger = logging.getLogger("oncopersistnet")


def run_stage(name: str, stage: Callable[[Params, ProjectPaths], object], params_file: str = "params.yaml") -> None:
    """Run one stage from the project root: one readable line and exit 1 on a user error."""
    configure_logging()
    disable_telemetry()  # before anything imports mlflow
    try:
        params = load_params(params_file)
        stage(params, ProjectPaths(Path(".")))
    except OncoPersistNetError as exc:
        logger.error("%s failed: %s", name, exc)
        sys.exit(1)
    except KeyboardInterrupt:
        logger.error("%s interrupted; no partial output was kept", name)
        sys.exit(130)


def binary_labels(labels: pd.Series | np.ndarray) -> np.ndarray:
    """1 for persister, 0 otherwise."""
    return (np.asarray(labels, dtype=str) == PERSISTER).astype(np.int64)


@dataclass(frozen=True)
class SplitCells:
    """Raw counts and identity of the cells of one split."""

    counts: sparse.csr_matrix
    y: np.ndarray
    cell_ids: np.ndarray
    samples: np.ndarray
    genes: np.ndarray


def read_split_cells(paths: ProjectPaths, split: str, limit: int | None = None) -> SplitCells:
    """Raw counts, binary labels, cell ids, samples and genes of one split of the validated data."""
    adata = read_h5ad(paths.validated)
    table = pd.read_csv(paths.split_table, dtype=str).set_index("cell_id")
    missing = adata.obs_names.difference(table.index)
    if len(missing):
        raise InputDataError(f"{paths.split_table}: {len(missing)} cells of {paths.validated} have no split (e.g. {missing[0]})")
    mask = (table.loc[adata.obs_names, "split"] == split).to_numpy()
    subset = adata[mask]
    if limit is not None:
        subset = subset[:limit]
    return SplitCells(
        counts=sparse.csr_matrix(subset.X),
        y=binary_labels(subset.obs["label"]),
        cell_ids=np.asarray(subset.obs_names, dtype=str),
        samples=np.asarray(subset.obs["sample"], dtype=str),
        genes=np.asarray(adata.var_names, dtype=str),
    )
