"""Stage cross_study: leave one dataset out, train on the rest, measure transfer to it.

Writes ``metrics/cross_study.json`` (``dvc metrics show``), ``reports/cross_study.md``
and ``reports/figures/cross_study.png``, and logs them to MLflow as one run
(tag ``run_kind=cross_study``). See :mod:`oncopersistnet.transfer.cross_study`.
"""

from __future__ import annotations

import logging
import time

from oncopersistnet import __version__
from oncopersistnet.atomic import rounded, write_metrics_json, write_text
from oncopersistnet.config import Params
from oncopersistnet.errors import ConfigError
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.tracking import (
    configure_mlflow,
    dvc_experiment_name,
    flatten_for_mlflow,
    git_commit,
    tracked_run,
)
from oncopersistnet.transfer.cross_study import run_cross_study
from oncopersistnet.transfer.cross_study_report import cross_study_markdown, plot_cross_study, summarize
from oncopersistnet.transfer.studies import load_studies

logger = logging.getLogger(__name__)

#: params.yaml sections (or keys) the stage reads; dvc.yaml lists the same.
SECTIONS = ("cross_study", "data", "simulate", "split", "preprocess", "train", "evaluate", "compare")


def _flat_metrics(summary: dict) -> dict[str, float]:
    """Numeric leaves of the zero-shot / fine-tuned / target-only / sweep figures, as MLflow metric names."""
    out: dict[str, float] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[prefix] = float(value)

    walk("held_out", summary["held_out"])
    walk("overlap_sweep", summary["overlap_sweep"].get("levels", {}))
    return out


def _log_run(params: Params, paths: ProjectPaths, summary: dict, *, seconds: float) -> str:
    configure_mlflow(params.mlflow, paths.root)
    import mlflow

    experiment = dvc_experiment_name()
    tags = {
        "run_kind": "cross_study",
        "model_family": params.train.architecture,
        "params_hash": params.hash(SECTIONS),
        "git_commit": git_commit(paths.root),
        "oncopersistnet_version": __version__,
        "pipeline": "dvc",
        "cross_study_datasets": ",".join(d.name for d in params.cross_study.datasets),
    }
    if experiment:
        tags["dvc_experiment"] = experiment
    with tracked_run(run_name=f"{experiment + '/' if experiment else ''}cross_study", tags=tags) as run:
        mlflow.log_params(
            flatten_for_mlflow(
                params.flat(["cross_study"]) | {"train.architecture": params.train.architecture}
            )
        )
        mlflow.log_metrics(_flat_metrics(summary) | {"stage_seconds": seconds})
        for artifact in (paths.cross_study_metrics, paths.cross_study_report, paths.cross_study_figure):
            mlflow.log_artifact(str(artifact), artifact_path="cross_study")
        return run.info.run_id


def run(params: Params, paths: ProjectPaths) -> None:
    """Load every study, hold each out in turn, write the report, log it."""
    import torch

    # Dozens of small networks: intra-op threads gain nothing here and collapse when the
    # CPU is shared (measured on 2 busy cores: 188 s with 2 threads, 23 s with 1).
    torch.set_num_threads(1)
    if params.cross_study.fine_tune_mode == "head" and params.train.architecture == "mlp":
        raise ConfigError(
            "cross_study.fine_tune_mode: head fine-tuning freezes convolutional/recurrent layers, "
            "which train.architecture mlp has none of; use all"
        )
    started = time.perf_counter()
    studies = load_studies(params, paths)
    results = run_cross_study(studies, params)
    summary = summarize(results, studies, params)
    write_metrics_json(paths.cross_study_metrics, summary)
    write_text(paths.cross_study_report, cross_study_markdown(rounded(summary)))  # as the metrics file says
    plot_cross_study(summary, paths.cross_study_figure)
    seconds = time.perf_counter() - started
    run_id = _log_run(params, paths, summary, seconds=seconds)
    for name, entry in summary["held_out"].items():
        k = f"k{max(params.cross_study.k_samples)}"
        logger.info(
            "held out %-10s overlap %5.1f%%  ROC-AUC network %.3f -> %.3f (%s), baseline %.3f -> %.3f",
            name,
            100 * entry["gene_overlap"]["selected_fraction"],
            entry["zero_shot"]["network"]["roc_auc"] or float("nan"),
            entry["fine_tuned"][k]["network"]["roc_auc"] or float("nan"),
            k,
            entry["zero_shot"]["baseline"]["roc_auc"] or float("nan"),
            entry["fine_tuned"][k]["baseline"]["roc_auc"] or float("nan"),
        )
    logger.info(
        "wrote %s, %s, %s in %.0f s; MLflow run %s",
        paths.cross_study_metrics,
        paths.cross_study_report,
        paths.cross_study_figure,
        seconds,
        run_id,
    )
