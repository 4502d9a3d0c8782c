"""Stage evaluate: the deployable model on held-out samples, its calibration and its errors.

The baselines and the other seeds live in the compare stage; this stage judges the
one model that export and register ship: calibrated and uncalibrated metrics, a
reliability diagram, the confusion matrix, a per-sample table, a 2-D view of
the test cells coloured by truth and by prediction, and how its conformal prediction
sets (calibrated on the validation cells at ``predict.coverage``, as shipped) cover
each class of the test cells.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from oncopersistnet.atomic import atomic_path, write_json
from oncopersistnet.config import Params
from oncopersistnet.data.cells import Cells
from oncopersistnet.data.labels import LABELS, label_names
from oncopersistnet.evaluation.metrics import (
    classification_metrics,
    confusion_counts,
    curve_tables,
    per_sample_table,
    reliability_table,
)
from oncopersistnet.evaluation.plots import plot_confusion, plot_embedding, plot_reliability
from oncopersistnet.inference.conformal import ConformalCalibration, held_out_report
from oncopersistnet.model import apply_calibration, load_checkpoint, predict_logits, predict_proba
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
        with atomic_path(paths.plots / "embedding" / f"{label}.csv") as tmp:
            embedding[embedding["truth"] == label].to_csv(tmp, index=False, float_format="%.4f")
    return coordinates, truth


def _log_to_training_run(
    params: Params,
    paths: ProjectPaths,
    *,
    scores: dict[str, dict[str, float]],
    conformal: dict[str, float | int | None],
    per_sample: pd.DataFrame,
    figures: list[Path],
) -> None:
    """The test metrics, figures and metric files, in the run the train stage opened."""
    import mlflow

    configure_mlflow(params.mlflow, paths.root)
    with resumed_run(load_run_id(paths.run_reference)):
        log_params_once(params.flat(["evaluate"]) | {"predict.coverage": params.predict.coverage})
        mlflow.log_metrics({f"test_{k}": v for k, v in scores[CALIBRATED].items()})
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
        mlflow.log_artifact(str(paths.evaluate_per_sample), artifact_path="metrics")


def run(params: Params, paths: ProjectPaths) -> None:
    """Write ``metrics/evaluate.json``, DVC plot data and PNGs; log them into the training run."""
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
    calibration = ConformalCalibration.fit(predict_proba(network, val.X).astype(np.float64), val.y)
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
    write_json(paths.evaluate_metrics, metrics)

    per_sample = per_sample_table(test.y, probability[CALIBRATED], test.samples, threshold=threshold)
    reliability = {name: reliability_table(test.y, p, bins) for name, p in probability.items()}
    for name, table in reliability.items():
        with atomic_path(paths.plots / "calibration" / f"{name}.csv") as tmp:
            table.to_csv(tmp, index=False, float_format="%.5f")
    with atomic_path(paths.plots / "confusion.csv") as tmp:
        curve_tables(test.y, probability[CALIBRATED], metrics["model"], threshold=threshold)[
            "confusion"
        ].to_csv(tmp, index=False)
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
    with atomic_path(paths.evaluate_per_sample) as tmp:
        per_sample.to_csv(tmp, index=False, float_format="%.4f")

    _log_to_training_run(
        params, paths, scores=scores, conformal=conformal, per_sample=per_sample, figures=figures
    )
    s, u = scores[CALIBRATED], scores[UNCALIBRATED]
    logger.info(
        "%s on %d held-out cells: F1 %.3f  ROC-AUC %.3f  MCC %.3f; "
        "calibration (%s) Brier %.3f -> %.3f, ECE %.3f -> %.3f; "
        "conformal sets at %.2f cover persisters %.3f, non-persisters %.3f (%.1f%% both, %.1f%% empty)",
        metrics["model"],
        len(test.y),
        s["f1"],
        s["roc_auc"],
        s["mcc"],
        params.train.calibration,
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
