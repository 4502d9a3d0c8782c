"""Stage preprocess: group split by sample, fit the preprocessor on train, transform all splits."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import sparse

from oncopersistnet.atomic import atomic_path, write_json, write_metrics_json
from oncopersistnet.config import Params
from oncopersistnet.data.cells import Cells
from oncopersistnet.data.hdf5 import read_h5ad
from oncopersistnet.data.labels import label_names
from oncopersistnet.inference.signal import CellSignal, cell_signal, signal_tail
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.preprocessing import SPLITS, CellPreprocessor, build_preprocessor, split_by_sample
from oncopersistnet.tracking import data_hash, file_md5

logger = logging.getLogger(__name__)

_CHUNK = 10_000  # training cells densified at a time for the signal figures


def _training_signal(preprocessor: CellPreprocessor, train_counts: sparse.spmatrix) -> dict[str, object]:
    """The no-call figures of every training cell, as ``predict`` computes them (chunked: stays sparse)."""
    selected = np.zeros(preprocessor.genes_.size, dtype=bool)
    selected[preprocessor.selected_] = True
    parts = [
        cell_signal(train_counts[start : start + _CHUNK].toarray(), selected)
        for start in range(0, train_counts.shape[0], _CHUNK)
    ]
    signal = CellSignal(
        counts=np.concatenate([p.counts for p in parts]),
        detected=np.concatenate([p.detected for p in parts]),
        detected_selected=np.concatenate([p.detected_selected for p in parts]),
    )
    return {"cells": int(train_counts.shape[0])} | signal_tail(signal)


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
    write_metrics_json(paths.training_signal, _training_signal(preprocessor, cells.X[split == "train"]))
    preprocessor.save(paths.preprocessor)
    logger.info("wrote features for %s and %s", ", ".join(SPLITS), paths.preprocessor)
