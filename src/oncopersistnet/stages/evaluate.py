"""Stage evaluate: the CNN-LSTM and a logistic-regression baseline on held-out samples."""

from __future__ import annotations

import logging

import pandas as pd

from oncopersistnet.atomic import atomic_path, write_json
from oncopersistnet.config import Params
from oncopersistnet.evaluation.baselines import fit_logistic_baseline
from oncopersistnet.evaluation.metrics import classification_metrics, confusion_counts, curve_tables
from oncopersistnet.evaluation.plots import plot_confusion, plot_roc_pr
from oncopersistnet.model import load_checkpoint, predict_proba
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.preprocessing import FeatureSet
from oncopersistnet.tracking import configure_mlflow, load_run_id, log_params_once, resumed_run

logger = logging.getLogger(__name__)

NETWORK = "cnn_lstm"
BASELINE = "logistic_regression"


def run(params: Params, paths: ProjectPaths) -> None:
    """Write ``metrics/evaluate.json``, DVC plot data and PNGs; log them into the training run."""
    import mlflow

    configure_mlflow(params.mlflow, paths.root)
    threshold = params.evaluate.threshold
    train, test = FeatureSet.load(paths.features("train")), FeatureSet.load(paths.features("test"))
    probabilities = {
        NETWORK: predict_proba(load_checkpoint(paths.model), test.X),
        BASELINE: fit_logistic_baseline(train.X, train.y, c=params.evaluate.baseline_c, seed=params.train.seed)
        .predict_proba(test.X)[:, 1],
    }
    metrics = {name: classification_metrics(test.y, p, threshold) for name, p in probabilities.items()}
    metrics[NETWORK]["n_test_cells"] = int(len(test.y))
    metrics[NETWORK]["n_test_samples"] = int(len(set(test.samples)))
    write_json(paths.evaluate_metrics, metrics)

    tables = {name: curve_tables(test.y, p, name, threshold) for name, p in probabilities.items()}
    # DVC colours plots by file, not by a column: one curve file per model.
    for name, table in tables.items():
        for kind in ("roc", "pr"):
            with atomic_path(paths.plots / kind / f"{name}.csv") as tmp:
                table[kind].to_csv(tmp, index=False)
    with atomic_path(paths.plots / "confusion.csv") as tmp:
        tables[NETWORK]["confusion"].to_csv(tmp, index=False)
    figures = [
        plot_roc_pr(
            pd.concat([t["roc"] for t in tables.values()]), pd.concat([t["pr"] for t in tables.values()]),
            metrics, paths.figures / "roc_pr.png",
        ),
        plot_confusion({name: confusion_counts(test.y, p, threshold) for name, p in probabilities.items()}, paths.figures / "confusion.png"),
    ]

    with resumed_run(load_run_id(paths.run_reference)):
        log_params_once(params.flat(["evaluate"]))
        for name, values in metrics.items():
            prefix = "test_" if name == NETWORK else f"{name}_test_"
            mlflow.log_metrics({f"{prefix}{k}": v for k, v in values.items() if not k.startswith("n_")})
        for figure in figures:
            mlflow.log_artifact(str(figure), artifact_path="figures")
        mlflow.log_artifact(str(paths.evaluate_metrics), artifact_path="metrics")
    for name, values in metrics.items():
        logger.info(
            "%-20s test F1 %.3f  ROC-AUC %.3f  PR-AUC %.3f  balanced accuracy %.3f",
            name, values["f1"], values["roc_auc"], values["pr_auc"], values["balanced_accuracy"],
        )
