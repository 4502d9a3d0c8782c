"""Stage ingest: simulator or user file -> ``data/raw/cells.h5ad`` (CSR integer counts)."""

from __future__ import annotations

import logging
from dataclasses import asdict
import os
from pathlib import Path

from oncopersistnet.atomic import write_h5ad
from oncopersistnet.config import Params
from oncopersistnet.errors import ConfigError
from oncopersistnet.data.load import load_labelled
from oncopersistnet.data.simulate import simulate_cells
from oncopersistnet.genes import harmonize_adata
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.tracking import file_md5

logger = logging.getLogger(__name__)

# Declared as a dependency of the ingest stage in dvc.yaml.
EXTERNAL_DIR = "data/external"


def run(params: Params, paths: ProjectPaths) -> None:
    """Produce the raw dataset that every later stage starts from."""
    data = params.data
    if data.input:
        # Compare lexically normalised paths: data/external may itself be a symlink
        # to a big disk, and "data/external/../x" must not slip through.
        external = Path(os.path.normpath(os.path.abspath(paths.root / EXTERNAL_DIR)))
        for key, value in (("data.input", data.input), ("data.metadata", data.metadata)):
            if value and external not in Path(os.path.normpath(os.path.abspath(paths.root / value))).parents:
                raise ConfigError(
                    f"{key}: {value} is outside {EXTERNAL_DIR}/; put the file (or a symlink to it) there "
                    "so that DVC notices when it changes"
                )
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
    logger.info("wrote %s (%d cells x %d genes)", paths.raw, adata.n_obs, adata.n_vars)
