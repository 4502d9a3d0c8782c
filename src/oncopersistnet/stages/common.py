"""What every stage entry shares: logging, error handling, and reading splits back."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from oncopersistnet import PERSISTER, __version__
from oncopersistnet.config import MODEL_SECTIONS, Params, load_params
from oncopersistnet.data.load import read_h5ad
from oncopersistnet.errors import InputDataError, OncoPersistNetError
from oncopersistnet.interrupts import exit_code, raise_on_sigterm
from oncopersistnet.logging_setup import configure_logging
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.tracking import disable_telemetry, dvc_experiment_name, git_commit

logger = logging.getLogger("oncopersistnet")


def run_stage(
    name: str, stage: Callable[[Params, ProjectPaths], object], params_file: str = "params.yaml"
) -> None:
    """Run one stage from the project root: one readable line and exit 1 on a user error, 130/143 when stopped."""
    configure_logging()
    disable_telemetry()  # before anything imports mlflow
    raise_on_sigterm()  # `kill`, a scheduler or DVC stopping us: clean up as for Ctrl-C
    try:
        params = load_params(params_file)
        stage(params, ProjectPaths(Path(".")))
    except OncoPersistNetError as exc:
        logger.error("%s failed: %s", name, exc)
        sys.exit(1)
    except KeyboardInterrupt as interrupt:
        logger.error("%s stopped (%s); no partial output was kept", name, interrupt or "interrupted")
        sys.exit(exit_code(interrupt))


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


def read_split_table(paths: ProjectPaths, cell_ids: pd.Index) -> np.ndarray:
    """The preprocess stage's split name of every cell in ``cell_ids``."""
    table = pd.read_csv(paths.split_table, dtype=str).set_index("cell_id")
    missing = cell_ids.difference(table.index)
    if len(missing):
        raise InputDataError(
            f"{paths.split_table}: {len(missing)} cells of {paths.validated} have no split (e.g. {missing[0]})"
        )
    return table.loc[cell_ids, "split"].to_numpy()


def read_split_cells(paths: ProjectPaths, split: str, limit: int | None = None) -> SplitCells:
    """Raw counts, binary labels, cell ids, samples and genes of one split of the validated data."""
    adata = read_h5ad(paths.validated)
    mask = read_split_table(paths, adata.obs_names) == split
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


def run_provenance(params: Params, paths: ProjectPaths, model_family: str, run_kind: str) -> dict[str, str]:
    """Tags every MLflow run of the pipeline carries, linking it to git, DVC and the data.

    ``run_kind`` is ``deployable`` for the train stage's run (the model export and
    register use) and ``comparison`` for the compare stage's one-run-per-model.
    """
    summary = read_preprocess_summary(paths)
    tags = {
        "model_family": model_family,
        "run_kind": run_kind,
        "data_hash": summary["data_hash"],
        "dvc_raw_md5": summary["raw_md5"],
        "input_md5": summary["input_md5"],
        "params_hash": params.hash(MODEL_SECTIONS),
        "git_commit": git_commit(paths.root),
        "oncopersistnet_version": __version__,
        "pipeline": "dvc",
    }
    if dvc_experiment_name():
        tags["dvc_experiment"] = dvc_experiment_name()
    return tags


def read_preprocess_summary(paths: ProjectPaths) -> dict:
    """The preprocess stage's ``summary.json`` (data hash, per-split cells and samples)."""
    try:
        return json.loads(paths.preprocess_summary.read_text())
    except (OSError, ValueError) as exc:
        raise InputDataError(
            f"{paths.preprocess_summary}: missing or unreadable; run the preprocess stage first"
        ) from exc
