"""Stage train: fit the CNN-LSTM in a new MLflow run and record the run for later stages."""

from __future__ import annotations

import logging

import pandas as pd

from oncopersistnet.atomic import write_table
from oncopersistnet.config import MODEL_SECTIONS, Params
from oncopersistnet.data.cells import Cells
from oncopersistnet.evaluation.plots import plot_training_curves
from oncopersistnet.model import save_checkpoint, train_model
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.preprocessing.outputs import read_preprocess_summary
from oncopersistnet.provenance import run_provenance
from oncopersistnet.tracking import configure_mlflow, flatten_for_mlflow, save_run_reference, tracked_run

logger = logging.getLogger(__name__)


def run(params: Params, paths: ProjectPaths) -> None:
    """Train, log params / per-epoch metrics / tags / curves, save ``models/model.pt``."""
    import mlflow

    experiment_id = configure_mlflow(params.mlflow, paths.root)
    train, val = Cells.load(paths.features("train")), Cells.load(paths.features("val"))
    summary = read_preprocess_summary(paths)
    architecture = params.train.architecture
    provenance = run_provenance(params, paths, architecture, run_kind="deployable")
    description = {
        "mlflow.note.content": (
            f"Deployable {architecture} persister classifier trained by the DVC pipeline on data "
            f"{summary['data_hash']}: {summary['train']['cells']} training cells from samples "
            f"{', '.join(summary['train']['samples'])}; "
            f"probabilities {params.train.calibration}-calibrated on "
            f"validation samples {', '.join(summary['val']['samples'])}; tested on held-out samples "
            f"{', '.join(summary['test']['samples'])}. test_* metrics are the calibrated model's; "
            "the baselines and the other seeds are the compare stage's runs (tag run_kind=comparison)."
        ),
    }
    experiment = f"{provenance['dvc_experiment']}/" if "dvc_experiment" in provenance else ""
    run_name = f"{experiment}{architecture.replace('_', '-')}-{provenance['params_hash'][:8]}"
    with tracked_run(run_name=run_name, tags=provenance | description) as active:
        run_id = active.info.run_id
        mlflow.log_params(flatten_for_mlflow(params.flat(MODEL_SECTIONS)))
        mlflow.log_metrics(
            {
                "n_train_cells": summary["train"]["cells"],
                "n_val_cells": summary["val"]["cells"],
                "n_test_cells": summary["test"]["cells"],
                "n_genes_selected": summary["n_genes_selected"],
                "pca_explained_variance": summary["explained_variance"],
            }
        )
        if paths.validation_report.exists():
            mlflow.log_artifact(str(paths.validation_report), artifact_path="validation")
        result = train_model(
            (train.X, train.y),
            (val.X, val.y),
            params.train,
            on_epoch=lambda epoch, row: mlflow.log_metrics(row, step=epoch),
        )
        n_parameters = result.model.n_parameters
        best = result.history[result.best_epoch - 1]
        scale, shift = (float(v) for v in result.model.calibration)
        mlflow.log_metrics(
            {
                "best_epoch": result.best_epoch,
                "n_parameters": n_parameters,
                "calibration_scale": scale,
                "calibration_shift": shift,
            }
            | {f"best_{name}": value for name, value in best.items() if name.startswith("val_")}
        )
        save_checkpoint(result.model, paths.model, extra={"best_epoch": result.best_epoch})
        history = pd.DataFrame(result.history)
        history.insert(0, "epoch", range(1, len(history) + 1))
        # Six digits, not four: evaluate finds the kept epoch again as this file's lowest val_loss,
        # and training counts a drop of 1e-6 as an improvement, so four could tie two epochs.
        write_table(paths.training_history, history, digits=6)
        figure = plot_training_curves(
            result.history, result.best_epoch, paths.figures / "training_curves.png"
        )
        mlflow.log_artifact(str(figure), artifact_path="figures")
        # Last: later stages reopen this run, so it is named only once the model it describes exists.
        # A killed attempt leaves no reference; its run is closed by tracked_run or close_orphaned_runs.
        save_run_reference(paths.run_reference, run_id, experiment_id=experiment_id, **provenance)
    logger.info(
        "trained %d-parameter %s (best epoch %d); MLflow run %s",
        n_parameters,
        architecture,
        result.best_epoch,
        run_id,
    )
