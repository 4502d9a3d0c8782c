"""One transfer of a trained model to an independent labelled dataset, end to end.

Loads the new study (any supported format, gene names harmonised, labels mapped
like ``data.*``), splits it by sample, scores the parent zero-shot, fine-tunes it
(:mod:`oncopersistnet.transfer.adapt`), trains the compare stage's families on
the new training samples alone for reference, exports the adapted model to ONNX
(parity-checked) and registers it (:mod:`oncopersistnet.transfer.registration`).
The DVC stage ``transfer`` and ``oncopersistnet transfer`` both run this.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from oncopersistnet.atomic import write_json, write_metrics_json, write_text
from oncopersistnet.config import LabelledDataConfig, Params, TransferConfig
from oncopersistnet.data.cells import Cells
from oncopersistnet.data.labels import label_names
from oncopersistnet.errors import ConfigError
from oncopersistnet.evaluation.comparison import run_comparison, summarize
from oncopersistnet.evaluation.folds import build_fold
from oncopersistnet.export import TrustCalibration, export_onnx, fit_trust, parity_check
from oncopersistnet.export.metadata import model_metadata
from oncopersistnet.model import save_checkpoint
from oncopersistnet.preprocessing.split import split_by_sample
from oncopersistnet.registry.trainable import CHECKPOINT_NAME, PREPROCESSOR_NAME, TrainableModel
from oncopersistnet.tracking import data_hash, file_md5
from oncopersistnet.transfer.adapt import Adapted, TargetCells, adapt, fine_tune_config, map_to_model
from oncopersistnet.transfer.registration import register_adapted
from oncopersistnet.transfer.report import transfer_markdown
from oncopersistnet.transfer.studies import load_labelled_file

logger = logging.getLogger(__name__)

ONNX_NAME = "oncopersistnet.onnx"
SUMMARY_NAME = "transfer.json"
REPORT_NAME = "transfer.md"
# Summary keys that depend on the MLflow store's history (version numbers, run ids), not on params, data
# and code. The output folder and the stage's git-tracked files leave them out, so that a DVC output is
# the same on every clone; they go to the record file the caller names.
STORE_DEPENDENT = ("registration", "parent_model_uri")


def store_independent(summary: dict[str, Any]) -> dict[str, Any]:
    """``summary`` without :data:`STORE_DEPENDENT`: what the output folder and the reports hold."""
    return {k: v for k, v in summary.items() if k not in STORE_DEPENDENT}


def registered_name(params: Params) -> str:
    """Where adapted versions are registered: their own model per target dataset by default."""
    return params.transfer.model_name or f"{params.register.model_name}-{params.transfer.dataset_name}"


def _study_config(config: TransferConfig) -> LabelledDataConfig:
    assert config.input is not None
    return config.labelled()


def run_transfer(
    params: Params, parent: TrainableModel, output_dir: Path, *, experiment_id: str, record: Path
) -> dict[str, Any]:
    """Adapt ``parent`` to ``params.transfer.input``; write ``output_dir`` as a whole; return the summary.

    ``output_dir`` gets the adapted model (``oncopersistnet.onnx``, ``model.pt``, ``preprocessor.npz``),
    ``transfer.json`` (every figure) and ``transfer.md``; ``record`` the registry version, run and
    parent URI (:data:`STORE_DEPENDENT`; the returned summary holds them too). ``experiment_id``: the
    MLflow experiment of the store the caller configured (``configure_mlflow``), for the adapted run.
    """
    config = params.transfer
    if config.input is None:
        raise ConfigError("transfer.input: give the labelled dataset to adapt the model to")

    study_cells = load_labelled_file(config.dataset_name, _study_config(config), config.input).cells
    split = split_by_sample(
        study_cells.samples,
        label_names(study_cells.y),
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        seed=config.seed,
    )
    selected = parent.preprocessor.genes_[parent.preprocessor.selected_]
    cells = map_to_model(study_cells, parent.preprocessor.genes_, selected, source=config.input)

    adapted = _fine_tune(params, parent, cells, split=split)
    # Models trained on the new data alone, on the same split and test cells.
    fold = build_fold(config.dataset_name, study_cells, split, config=params.preprocess)
    baseline_params = replace(params, train=replace(params.train, seed=config.seed))
    baselines = summarize(run_comparison([fold], baseline_params, families=config.baselines, progress=False))

    samples_of = {name: sorted(set(study_cells.samples[split == name])) for name in ("train", "val", "test")}
    study = {
        "dataset": config.dataset_name,
        "input": config.input,
        "input_md5": file_md5(Path(config.input)),
        "data_hash": data_hash(
            study_cells.X,
            study_cells.y,
            study_cells.samples,
            genes=study_cells.genes,
            cells=study_cells.cell_ids,
        ),
        "cells": study_cells.n_cells,
        "genes": int(len(study_cells.genes)),
        "samples": samples_of,
        "test_cells": int((split == "test").sum()),
        "gene_match": {
            "model_genes": int(cells.match.n_model_genes),
            "model_genes_found": int(cells.match.n_matched),
            "selected_genes": int(cells.match.n_selected),
            "selected_genes_found": int(cells.match.n_selected_matched),
        },
    }
    summary = {
        "parent_model_uri": parent.parent_uri,
        "registered_model": registered_name(params),
        "mode": config.mode,
        "refit_scaling": config.refit_scaling,
        "best_epoch": adapted.best_epoch,
        "study": study,
        "zero_shot": adapted.zero_shot,
        "fine_tuned": adapted.fine_tuned,
        "trained_on_new_data_only": baselines,
    }
    raw_test = study_cells.subset(split == "test")  # the study's own columns: the gate matches genes itself
    _export_and_register(
        params,
        output_dir,
        adapted,
        cells=cells,
        split=split,
        raw_test=raw_test,
        samples_of=samples_of,
        summary=summary,
        experiment_id=experiment_id,
        record=record,
    )
    logger.info("wrote the adapted model, %s and %s to %s", SUMMARY_NAME, REPORT_NAME, output_dir)
    return summary


def _fine_tune(params: Params, parent: TrainableModel, cells: TargetCells, *, split: np.ndarray) -> Adapted:
    """``parent`` fine-tuned on the study's train/val cells with the transfer schedule, scored on its test."""
    config = params.transfer
    tune = fine_tune_config(
        params.train,
        learning_rate=config.learning_rate,
        max_epochs=config.max_epochs,
        patience=config.patience,
        seed=config.seed,
    )
    return adapt(
        parent,
        cells,
        split,
        config=tune,
        mode=config.mode,
        refit_scaling=config.refit_scaling,
        threshold=params.evaluate.threshold,
    )


def _fit_trust(
    params: Params, adapted: Adapted, *, cells: TargetCells, split: np.ndarray
) -> TrustCalibration:
    """The adapted model's OOD distance (its training cells) and conformal scores (its validation cells)."""
    return fit_trust(
        adapted.preprocessor,
        adapted.network,
        train_counts=cells.cells.X[split == "train"],
        val_counts=cells.cells.X[split == "val"],
        val_y=cells.cells.y[split == "val"],
        ood_quantile=params.export.ood_quantile,
    )


def _export_and_register(
    params: Params,
    output_dir: Path,
    adapted: Adapted,
    *,
    cells: TargetCells,
    split: np.ndarray,
    raw_test: Cells,
    samples_of: dict[str, list[str]],
    summary: dict,
    experiment_id: str,
    record: Path,
) -> None:
    """Write ``output_dir`` as a whole (built aside, then renamed), register its ONNX graph and write
    the registration to ``record``."""
    config = params.transfer
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    try:
        metadata = model_metadata(
            adapted.preprocessor,
            adapted.network,
            model_name=registered_name(params),
            threshold=params.evaluate.threshold,
            calibration=params.train.calibration,
            fit_samples=samples_of["train"] + samples_of["val"],
            # the parent's URI and the git commit go onto the registered copy only (register_adapted)
            provenance={"transfer_dataset": config.dataset_name, "data_hash": summary["study"]["data_hash"]},
        )
        trust = _fit_trust(params, adapted, cells=cells, split=split)
        onnx_path = building / ONNX_NAME
        proto = export_onnx(
            adapted.preprocessor,
            adapted.network,
            onnx_path,
            metadata=metadata,
            trust=trust,
            opset=params.export.opset,
        )
        test_counts = cells.cells.X[split == "test"]
        parity = parity_check(
            onnx_path,
            adapted.preprocessor,
            adapted.network,
            trust=trust,
            counts=test_counts[: params.export.parity_cells],
            tolerance=params.export.parity_tolerance,
            seed=config.seed,
        )
        save_checkpoint(adapted.network, building / CHECKPOINT_NAME, extra={"best_epoch": adapted.best_epoch})
        adapted.preprocessor.save(building / PREPROCESSOR_NAME)
        # figures first: a failed registration still leaves no half folder
        write_metrics_json(building / SUMMARY_NAME, store_independent(summary))
        write_text(building / REPORT_NAME, transfer_markdown(store_independent(summary)))
        summary["registration"] = register_adapted(
            params,
            proto,
            building,
            adapted=adapted,
            test=cells.subset(split == "test"),
            raw_test=raw_test,
            summary=summary,
            parity=parity,
            experiment_id=experiment_id,
            name=registered_name(params),
        )
        shutil.rmtree(output_dir, ignore_errors=True)
        building.rename(output_dir)
        write_json(record, {k: summary[k] for k in STORE_DEPENDENT})
    finally:
        shutil.rmtree(building, ignore_errors=True)
