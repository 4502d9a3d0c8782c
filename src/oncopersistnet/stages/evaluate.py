"""Stage evaluate: the deployable model on held-out samples, its calibration and its errors.

The baselines and the other seeds live in the compare stage; this stage judges the
one model that export and register ship: calibrated and uncalibrated metrics, a
reliability diagram, the confusion matrix, a per-sample table, a 2-D view of
the test cells coloured by truth and by prediction, and how its conformal prediction
sets (calibrated on the validation cells at ``predict.coverage``, as shipped) cover
each class of the test cells.

It also writes ``metrics/validation.json``, the same metrics on the validation cells: the
figures to choose hyperparameters on (``dvc exp show``), so that the test figures stay an
unbiased final report.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from oncopersistnet.atomic import write_metrics_json, write_table
from oncopersistnet.config import Params
from oncopersistnet.data.cells import Cells
from oncopersistnet.data.labels import LABELS, label_names
from oncopersistnet.evaluation.metrics import (
    METRIC_NAMES,
    classification_metrics,
    confusion_counts,
    curve_tables,
    per_sample_table,
    reliability_table,
)
from oncopersistnet.evaluation.plots import plot_confusion, plot_embedding, plot_reliability
from oncopersistnet.inference.conformal import ConformalCalibration, held_out_report
from oncopersistnet.model import (
    PersisterNetwork,
    apply_calibration,
    load_checkpoint,
    predict_logits,
    predict_proba,
)
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.tracking import configure_mlflow, load_run_id, log_params_once, resumed_run

logger = logging.getLogger(__name__)

CALIBRATED = "calibrated"
UNCALIBRATED = "uncalibrated"


def _write_embedding(
    test: Cells, predicted: np.ndarray, paths: ProjectPaths
) -> tuple[np.ndarray, np.ndarray]:
    """PC1/PC2 of the test cells with truth and call, one DVC plot file per true label.

    Returns (coordinates, truth).
    """
    truth = np.asarray(LABELS)[test.y]
    coordinates = np.column_stack(
        [test.X[:, 0], test.X[:, 1] if test.X.shape[1] > 1 else np.zeros(len(test.X))]
    )
    embedding = pd.DataFrame(
        {"pc1": coordinates[:, 0], "pc2": coordinates[:, 1], "truth": truth, "predicted": predicted}
    )
    for label in LABELS:  # DVC colours by file: one file per true label
        write_table(paths.plots / "embedding" / f"{label}.csv", embedding[embedding["truth"] == label])
    return coordinates, truth


def _validation_report(
    network: PersisterNetwork, val: Cells, probability: np.ndarray, *, params: Params, paths: ProjectPaths
) -> dict:
    """The deployed network on the validation cells, and where early stopping left it.

    Why: a ``dvc exp`` sweep that picks the run with the best ``metrics/evaluate.json`` chooses
    hyperparameters on the test cells, and the test figures then overstate what a new culture
    will see. These are the figures to choose on. Same metrics and threshold as the test
    figures; the training block is the epoch whose weights were kept (the lowest validation
    loss of ``metrics/training_history.csv``). These cells also chose that epoch and fit the
    calibration, so Brier and ECE here are optimistic; they rank runs, they do not report one.
    """
    history = pd.read_csv(paths.training_history)
    best = int(history["val_loss"].idxmin())
    scores = classification_metrics(
        val.y, probability, params.evaluate.threshold, n_bins=params.evaluate.calibration_bins
    )
    return {
        "model": network.architecture,
        "validation": scores | {"n_val_cells": int(len(val.y)), "n_val_samples": int(len(set(val.samples)))},
        "training": {
            "best_epoch": int(history.loc[best, "epoch"]),
            "best_val_loss": float(history.loc[best, "val_loss"]),
            "epochs_run": int(len(history)),
        },
    }


def _log_to_training_run(
    params: Params,
    paths: ProjectPaths,
    *,
    scores: dict[str, dict[str, float]],
    validation: dict[str, float],
    conformal: dict[str, float | int | None],
    per_sample: pd.DataFrame,
    figures: list[Path],
) -> None:
    """The test and validation metrics, figures and metric files, in the run the train stage opened.

    The validation figures are ``val_calibrated_*``: train already logs ``val_loss``, ``val_f1`` and
    ``val_roc_auc`` per epoch (uncalibrated, during training), and those histories must stay whole.
    """
    import mlflow

    configure_mlflow(params.mlflow, paths.root)
    with resumed_run(load_run_id(paths.run_reference)):
        log_params_once(params.flat(["evaluate"]) | {"predict.coverage": params.predict.coverage})
        mlflow.log_metrics({f"test_{k}": v for k, v in scores[CALIBRATED].items()})
        mlflow.log_metrics({f"val_calibrated_{k}": validation[k] for k in METRIC_NAMES})
        # the nominal coverage is the param above; a quantile of None (class always in the set) is left out
        mlflow.log_metrics(
            {f"test_conformal_{k}": v for k, v in conformal.items() if k != "coverage" and v is not None}
        )
        mlflow.log_metrics(
            {f"test_uncalibrated_{k}": scores[UNCALIBRATED][k] for k in ("brier", "ece", "f1", "mcc")}
        )
        mlflow.log_metric("test_samples_called_right", float(per_sample["sample_correct"].mean()))
        for figure in figures:
            mlflow.log_artifact(str(figure), artifact_path="figures")
        mlflow.log_artifact(str(paths.evaluate_metrics), artifact_path="metrics")
        mlflow.log_artifact(str(paths.validation_metrics), artifact_path="metrics")
        mlflow.log_artifact(str(paths.evaluate_per_sample), artifact_path="metrics")


def _log_summary(metrics: dict, validation: dict) -> None:
    """One log line for the test report, one for the validation figures sweeps choose on."""
    s, u, conformal = metrics["test"], metrics["test_uncalibrated"], metrics["conformal"]
    logger.info(
        "%s on %d held-out cells: F1 %.3f  ROC-AUC %.3f  MCC %.3f; "
        "calibration (%s) Brier %.3f -> %.3f, ECE %.3f -> %.3f; "
        "conformal sets at %.2f cover persisters %.3f, non-persisters %.3f (%.1f%% both, %.1f%% empty)",
        metrics["model"],
        s["n_test_cells"],
        s["f1"],
        s["roc_auc"],
        s["mcc"],
        metrics["calibration"]["method"],
        u["brier"],
        s["brier"],
        u["ece"],
        s["ece"],
        conformal["coverage"],
        conformal["coverage_persister"],
        conformal["coverage_non_persister"],
        100 * conformal["both_fraction"],
        100 * conformal["empty_fraction"],
    )
    v, training = validation["validation"], validation["training"]
    logger.info(
        "on %d validation cells (for model selection): F1 %.3f  ROC-AUC %.3f  PR-AUC %.3f; "
        "best epoch %d of %d (validation loss %.4f)",
        v["n_val_cells"],
        v["f1"],
        v["roc_auc"],
        v["pr_auc"],
        training["best_epoch"],
        training["epochs_run"],
        training["best_val_loss"],
    )


def run(params: Params, paths: ProjectPaths) -> None:
    """Write ``metrics/evaluate.json``, ``metrics/validation.json``, DVC plot data and PNGs; log them
    into the training run."""
    threshold, bins = params.evaluate.threshold, params.evaluate.calibration_bins
    test = Cells.load(paths.features("test"))
    network = load_checkpoint(paths.model)
    scale, shift = (float(v) for v in network.calibration)
    probability = {
        CALIBRATED: predict_proba(network, test.X).astype(np.float64),
        UNCALIBRATED: apply_calibration(predict_logits(network, test.X), 1.0, 0.0),
    }
    scores = {
        name: classification_metrics(test.y, p, threshold, n_bins=bins) for name, p in probability.items()
    }
    val = Cells.load(paths.features("val"))
    val_probability = predict_proba(network, val.X).astype(np.float64)
    calibration = ConformalCalibration.fit(val_probability, val.y)
    conformal = held_out_report(
        calibration, probability[CALIBRATED], test.y, coverage=params.predict.coverage
    )
    metrics = {
        "model": network.architecture,
        "test": scores[CALIBRATED]
        | {"n_test_cells": int(len(test.y)), "n_test_samples": int(len(set(test.samples)))},
        "test_uncalibrated": scores[UNCALIBRATED],
        "calibration": {"method": params.train.calibration, "scale": scale, "shift": shift},
        "conformal": conformal,
    }
    write_metrics_json(paths.evaluate_metrics, metrics)
    validation = _validation_report(network, val, val_probability, params=params, paths=paths)
    write_metrics_json(paths.validation_metrics, validation)

    per_sample = per_sample_table(test.y, probability[CALIBRATED], test.samples, threshold=threshold)
    reliability = {name: reliability_table(test.y, p, bins) for name, p in probability.items()}
    for name, table in reliability.items():
        write_table(paths.plots / "calibration" / f"{name}.csv", table)
    write_table(
        paths.plots / "confusion.csv",
        curve_tables(test.y, probability[CALIBRATED], metrics["model"], threshold=threshold)["confusion"],
    )
    predicted = label_names(probability[CALIBRATED] >= threshold)
    coordinates, truth = _write_embedding(test, predicted, paths)
    figures = [
        plot_reliability(reliability, scores, paths.figures / "calibration.png"),
        plot_confusion(
            {metrics["model"]: confusion_counts(test.y, probability[CALIBRATED], threshold)},
            paths.figures / "confusion.png",
        ),
        plot_embedding(coordinates, truth, predicted, path=paths.figures / "embedding.png"),
    ]
    write_table(paths.evaluate_per_sample, per_sample)

    _log_to_training_run(
        params,
        paths,
        scores=scores,
        validation=validation["validation"],
        conformal=conformal,
        per_sample=per_sample,
        figures=figures,
    )
    _log_summary(metrics, validation)
