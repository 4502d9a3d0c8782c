"""Stage ingest: simulator or user file -> ``data/raw/cells.h5ad`` (CSR integer counts)."""

from __future__ import annotations

import logging

from oncopersistnet.atomic import write_h5ad
from oncopersistnet.config import Params
from oncopersistnet.data.load import load_labelled_h5ad
from oncopersistnet.data.simulate import simulate_cells
from oncopersistnet.paths import ProjectPaths

logger = logging.getLogger(__name__)


def run(params: Params, paths: ProjectPaths) -> None:
    """Produce the raw dataset that every later stage starts from."""
    data = params.data
    if data.input:
        adata = load_labelled_h5ad(
            data.input, data.label_key, data.sample_key, data.persister_values, data.non_persister_values
        )
    else:
        adata = simulate_cells(params.simulate)
    write_h5ad(paths.raw, adata)
    logger.info("wrote %s (%d cells x %d genes)", paths.raw, adata.n_obs, adata.n_vars)
