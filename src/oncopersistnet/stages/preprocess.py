"""Stage preprocess: group split by sample, fit the preprocessor on train, transform all splits."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from oncopersistnet.atomic import atomic_path, write_json
from oncopersistnet.config import Params
from oncopersistnet.data.load import read_h5ad
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.preprocessing import SPLITS, FeatureSet, build_preprocessor, split_by_sample
from oncopersistnet.stages.common import binary_labels
from oncopersistnet.tracking import data_hash, file_md5

logger = logging.getLogger(__name__)


def run(params: Params, paths: ProjectPaths) -> None:
    """Write per-split features, the split table, a summary and the fitted preprocessor."""
    adata = read_h5ad(paths.validated)
    samples = np.asarray(adata.obs["sample"], dtype=str)
    labels = np.asarray(adata.obs["label"], dtype=str)
    cells = np.asarray(adata.obs_names, dtype=str)
    split = split_by_sample(
        samples, labels, params.split.val_fraction, params.split.test_fraction, params.split.seed
    )
    preprocessor = build_preprocessor(params.preprocess).fit(adata.X[split == "train"], adata.var_names)

    y = binary_labels(labels)
    summary: dict[str, object] = {
        "data_hash": data_hash(adata.X, labels, samples, genes=np.asarray(adata.var_names), cells=cells),
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
        mask = split == name
        FeatureSet(preprocessor.transform(adata.X[mask]), y[mask], cells[mask], samples[mask]).save(
            paths.features(name)
        )
        summary[name] = {
            "cells": int(mask.sum()),
            "persisters": int(y[mask].sum()),
            "samples": sorted(set(samples[mask])),
        }
    table = pd.DataFrame({"cell_id": cells, "sample": samples, "label": labels, "split": split})
    with atomic_path(paths.split_table) as tmp:
        table.to_csv(tmp, index=False)
    write_json(paths.preprocess_summary, summary)
    preprocessor.save(paths.preprocessor)
    logger.info("wrote features for %s and %s", ", ".join(SPLITS), paths.preprocessor)
