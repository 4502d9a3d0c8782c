"""Track and register an adapted model: its own MLflow run, linked to the parent version.

The run carries the parent's registry URI (tag ``parent_model_uri``), the new
dataset's hash and the fine-tuning params; its metrics are the zero-shot and
fine-tuned figures on the same new test cells (``zero_shot_*``, ``test_*``) and
those of the models trained on the new data alone (``new_data_<family>_*``). The
ONNX graph is registered under its own model name (one per target dataset by
default), and the main model's promotion gate decides its alias.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from oncopersistnet.config import Params
from oncopersistnet.data.cells import Cells
from oncopersistnet.inference.model import OnnxPersisterModel
from oncopersistnet.registry.gate import judge_candidate
from oncopersistnet.registry.publish import publish
from oncopersistnet.registry.trainable import CHECKPOINT_NAME, PREPROCESSOR_NAME
from oncopersistnet.tracking import dvc_experiment_name, flatten_for_mlflow, git_commit, tracked_run
from oncopersistnet.transfer.adapt import Adapted, TargetCells

logger = logging.getLogger(__name__)

REPORTED = ("f1", "roc_auc", "pr_auc", "balanced_accuracy", "brier", "ece")


def _description(summary: dict[str, Any], name: str) -> str:
    study = summary["study"]
    return (
        f"{summary['parent_model_uri']} adapted to {study['dataset']} ({study['input']}): "
        f"{summary['mode']} fine-tuning"
        f"{' with scaling statistics refitted' if summary['refit_scaling'] else ''} on samples "
        f"{', '.join(study['samples']['train'])}, validated on {', '.join(study['samples']['val'])}, "
        f"tested on {', '.join(study['samples']['test'])}. test_* metrics: the fine-tuned model; "
        "zero_shot_*: the parent as it was, on the same cells; new_data_*: models trained on the new "
        f"samples alone. Registered as {name}."
    )


def _run_tags(params: Params, adapted: Adapted, summary: dict[str, Any], *, name: str) -> dict[str, str]:
    study = summary["study"]
    tags = {
        "run_kind": "transfer",
        "model_family": adapted.network.architecture,
        "parent_model_uri": summary["parent_model_uri"],
        "transfer_dataset": study["dataset"],
        "data_hash": study["data_hash"],
        "input_md5": study["input_md5"],
        "git_commit": git_commit(),
        "params_hash": params.hash(["transfer", "train", "preprocess"]),
        "mlflow.note.content": _description(summary, name),
    }
    experiment = dvc_experiment_name()
    if experiment:
        tags["dvc_experiment"] = experiment
    return tags


def _metrics(
    adapted: Adapted, summary: dict[str, Any], parity: dict[str, float], *, gene_match_fraction: float
) -> dict[str, float]:
    """The run's figures: zero-shot and fine-tuned on the same cells, new-data-only models, ONNX parity."""
    metrics = {f"zero_shot_{k}": adapted.zero_shot[k] for k in REPORTED}
    metrics |= {f"test_{k}": adapted.fine_tuned[k] for k in REPORTED}
    metrics |= {
        f"new_data_{family}_{k}": entry[k]["mean"]
        for family, entry in summary["trained_on_new_data_only"].items()
        for k in ("f1", "roc_auc")
    }
    metrics |= {f"onnx_{k}": v for k, v in parity.items()}
    metrics |= {"best_epoch": adapted.best_epoch, "gene_match_fraction": gene_match_fraction}
    return {k: v for k, v in metrics.items() if v == v}  # NaN (one class) is not logged


def register_adapted(
    params: Params,
    proto: onnx.ModelProto,
    folder: Path,
    *,
    adapted: Adapted,
    test: TargetCells,
    raw_test: Cells,
    summary: dict[str, Any],
    parity: dict[str, float],
    experiment_id: str,
    name: str,
) -> dict[str, str]:
    """One MLflow run and one registered version; returns name, version, alias, reason, run id and URI.

    ``test``: the new test cells laid over the model's genes; ``raw_test``: the same
    cells as the study gave them (its own counts and gene names), so the gate's gene matching
    and ``gene_match_fraction`` see what the study really measured.
    """
    import mlflow

    candidate_model = OnnxPersisterModel(folder / "oncopersistnet.onnx")
    judgement = judge_candidate(candidate_model, name, cells=raw_test, coverage=params.predict.coverage)
    study = summary["study"]
    version_tags = {
        "parent_model_uri": summary["parent_model_uri"],
        "transfer_dataset": study["dataset"],
        "data_hash": study["data_hash"],
    }
    experiment = dvc_experiment_name()
    run_name = f"{experiment + '/' if experiment else ''}transfer-{study['dataset']}-{summary['mode']}"
    with tracked_run(
        run_name=run_name, experiment_id=experiment_id, tags=_run_tags(params, adapted, summary, name=name)
    ) as run:
        mlflow.log_params(flatten_for_mlflow(params.flat(["transfer"])))
        for epoch, row in enumerate(adapted.history, start=1):
            mlflow.log_metrics(row, step=epoch)
        mlflow.log_metrics(
            _metrics(adapted, summary, parity, gene_match_fraction=judgement.candidate["gene_match_fraction"])
        )
        published = publish(
            proto,
            candidate_model,
            judgement,
            model_name=name,
            config=params.register,
            example=np.nan_to_num(test.cells.X[:2]).astype(np.float32),
            trainable_files=(folder / CHECKPOINT_NAME, folder / PREPROCESSOR_NAME),
            card=lambda _version: (_description(summary, name), version_tags),
            # not in the exported file (the DVC output): they differ per clone and per store
            provenance={"parent_model_uri": summary["parent_model_uri"], "git_commit": git_commit()},
        )
        mlflow.set_tag("registered_model", name)
        run_id = run.info.run_id
    decision = published.decision
    return {
        "model_name": name,
        "version": published.version,
        "alias": decision.alias,
        "reason": decision.reason,
        "run_id": run_id,
        "model_uri": published.model_uri,
    }
