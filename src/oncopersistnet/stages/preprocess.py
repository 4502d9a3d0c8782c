"""Stage preprocess: group split by sample, fit the preprocessor on train, transform all splits."""

from __future__ import annotations

import logging

import pandas as pd

from oncopersistnet.atomic import atomic_path, write_json
from oncopersistnet.config import Params
from oncopersistnet.data.cells import Cells
from oncopersistnet.data.hdf5 import read_h5ad
from oncopersistnet.data.labels import label_names
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.preprocessing import SPLITS, build_preprocessor, split_by_sample
from oncopersistnet.tracking import data_hash, file_md5

logger = logging.getLogger(__name__)


def run(params: Params, paths: ProjectPaths) -> None:
    """Write per-split features, the split table, a summary and the fitted preprocessor."""
    adata = read_h5ad(paths.validated)
    cells = Cells.from_anndata(adata)
    labels = label_names(cells.y)
    split = split_by_sample(
        cells.samples,
        labels,
        val_fraction=params.split.val_fraction,
        test_fraction=params.split.test_fraction,
        seed=params.split.seed,
    )
    preprocessor = build_preprocessor(params.preprocess).fit(cells.X[split == "train"], adata.var_names)

    summary: dict[str, object] = {
        "data_hash": data_hash(cells.X, labels, cells.samples, genes=cells.genes, cells=cells.cell_ids),
        # validate copies raw bytes unchanged, so this is the md5 DVC records for data/raw/cells.h5ad:
        # any model traces back to the exact raw file (`dvc.lock`, `dvc get`, `git log dvc.lock`).
        "raw_md5": file_md5(paths.validated),
        "input_md5": str(adata.uns.get("source", {}).get("input_md5", "simulated")),
        "n_genes_in": int(adata.n_vars),
        "n_genes_selected": int(preprocessor.selected_.size),
        "n_components": preprocessor.n_features_out,
        "explained_variance": float(preprocessor.explained_variance_ratio_.sum()),
    }
    for name in SPLITS:
        part = cells.subset(split == name)
        part.with_X(preprocessor.transform(part.X)).save(paths.features(name))
        summary[name] = {
            "cells": part.n_cells,
            "persisters": int(part.y.sum()),
            "samples": sorted(set(part.samples)),
        }
    table = pd.DataFrame(
        {"cell_id": cells.cell_ids, "sample": cells.samples, "label": labels, "split": split}
    )
    with atomic_path(paths.split_table) as tmp:
        table.to_csv(tmp, index=False)
    write_json(paths.preprocess_summary, summary)
    preprocessor.save(paths.preprocessor)
    logger.info("wrote features for %s and %s", ", ".join(SPLITS), paths.preprocessor)
