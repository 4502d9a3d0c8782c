"""Stage ingest: simulator or user file -> ``data/raw/cells.h5ad`` (CSR integer counts)."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from oncopersistnet.atomic import write_h5ad, write_metrics_json
from oncopersistnet.config import Params
from oncopersistnet.data.load import load_labelled
from oncopersistnet.data.simulate import simulate_cells
from oncopersistnet.data.summary import data_summary
from oncopersistnet.genes import harmonize_adata
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.tracking import file_md5

logger = logging.getLogger(__name__)

# Declared as a dependency of the ingest stage in dvc.yaml.


def run(params: Params, paths: ProjectPaths) -> None:
    """Produce the raw dataset that every later stage starts from."""
    data = params.data
    if data.input:
        for key, value in (("data.input", data.input), ("data.metadata", data.metadata)):
            if value:
                paths.external_file(key, value)
        adata = load_labelled(data)
        # The user's original file, fingerprinted: the MLflow run carries it (tag input_md5).
        adata.uns["source"]["input_md5"] = file_md5(Path(data.input))
    else:
        if data.metadata:
            logger.warning("data.metadata is set but data.input is not: the simulator ignores it")
        adata = simulate_cells(params.simulate)
    # One gene namespace for training and for every later prediction input.
    adata, report = harmonize_adata(adata)
    adata.uns["gene_harmonization"] = asdict(report)
    write_h5ad(paths.raw, adata)
    write_metrics_json(paths.data_metrics, data_summary(adata))
    logger.info("wrote %s (%d cells x %d genes)", paths.raw, adata.n_obs, adata.n_vars)
