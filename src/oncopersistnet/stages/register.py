"""Stage register: judge the exported ONNX model, publish it as a registered version, write ``registry.json``.

The work is the registry package's (:mod:`oncopersistnet.registry.gate`,
:mod:`oncopersistnet.registry.publish`); this stage reads the pipeline's
outputs, records the gate's figures in the training run and writes the result:
``models/registry.json`` (everything, git-ignored, not a DVC output) and
``models/register.json`` (the DVC output: the same without :data:`STORE_DEPENDENT`).
"""

from __future__ import annotations

import json
import logging

import numpy as np
import onnx

from oncopersistnet.atomic import write_json, write_metrics_json
from oncopersistnet.config import Params
from oncopersistnet.inference.model import OnnxPersisterModel
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.preprocessing.outputs import read_preprocess_summary, read_split_cells
from oncopersistnet.registry.card import build_model_card
from oncopersistnet.registry.gate import HeadToHead, judge_candidate
from oncopersistnet.registry.publish import Publication, publish
from oncopersistnet.tracking import configure_mlflow, load_run_reference, log_params_once, resumed_run

logger = logging.getLogger(__name__)

# Keys of registry.json that depend on the MLflow store's history (version numbers, run ids, whether a
# champion existed and so the alias, reason and head-to-head), not on params, data and code: DVC does
# not track them, so that every clone's `dvc repro` writes the same dvc.lock.
STORE_DEPENDENT = (
    "version",
    "alias",
    "reason",
    "run_id",
    "model_uri",
    "previous_champion_version",
    "head_to_head",
)

MODEL_DESCRIPTION = (
    "OncoPersistNet: classifies single cancer cells from scRNA-seq raw counts as drug-tolerant persisters "
    "(cells that survive treatment and seed relapse) or non-persisters. Each version is an ONNX graph that "
    "includes normalisation, gene selection, imputation, PCA and the CNN-LSTM; the alias 'champion' marks "
    "the version that passed the promotion gate. Intended for cells like those it was trained on (see each "
    "version's description); not a clinical tool."
)


def _log_gate(published: Publication) -> None:
    """The gate's verdict and, when there was a champion, both models' figures on the same cells."""
    import mlflow

    decision = published.decision
    mlflow.set_tag("promotion_reason", decision.reason)
    if isinstance(decision.head_to_head, HeadToHead):
        h2h = decision.head_to_head
        mlflow.log_metrics(
            {
                f"gate_{who}_{k}": m[k]
                for who, m in (("candidate", h2h.candidate), ("champion", h2h.champion))
                for k in ("f1", "roc_auc")
            }
            | {"gate_cells": h2h.n_cells}
        )
        mlflow.set_tag("gate_cells_hash", h2h.cells_hash)


def _registry_record(
    published: Publication, candidate: dict[str, float], run_id: str, *, previous_champion: str | None
) -> dict[str, object]:
    """``models/registry.json``: what was registered, its alias and why."""
    decision, h2h = published.decision, published.decision.head_to_head
    return {
        "model_name": published.model_name,
        "version": published.version,
        "alias": decision.alias,
        "reason": decision.reason,
        "run_id": run_id,
        "model_uri": published.model_uri,
        "candidate_test_metrics": candidate,
        "previous_champion_version": previous_champion,
        "head_to_head": None
        if h2h is None
        else {
            "cells": h2h.n_cells,
            "cells_hash": h2h.cells_hash,
            "candidate": h2h.candidate,
            "champion": h2h.champion,
        },
    }


def run(params: Params, paths: ProjectPaths) -> None:
    """Register a new version; alias it champion or challenger; write ``models/registry.json``."""
    config = params.register
    configure_mlflow(params.mlflow, paths.root)
    reference = load_run_reference(paths.run_reference)
    run_id = str(reference["run_id"])
    # Left out of the exported file (the DVC output), stamped onto the registered copy users deploy.
    provenance = {"mlflow_run_id": run_id, "git_commit": str(reference.get("git_commit", ""))}
    test = read_split_cells(paths, "test")  # sparse; scoring densifies only the model's genes
    candidate_model = OnnxPersisterModel(paths.onnx)  # carries evaluate.threshold from export
    judgement = judge_candidate(
        candidate_model, config.model_name, cells=test, coverage=params.predict.coverage
    )
    gate = judgement.comparison
    gate_cells_hash = gate.cells_hash if isinstance(gate, HeadToHead) else ""

    def card(version: str) -> tuple[str, dict[str, str]]:
        description, tags = build_model_card(
            params,
            version,
            len(candidate_model.genes),
            metadata=candidate_model.metadata | provenance,
            split_summary=read_preprocess_summary(paths),
            evaluate=json.loads(paths.evaluate_metrics.read_text()),
            comparison=json.loads(paths.comparison_metrics.read_text()),
            gate_metrics=judgement.candidate,
        )
        return description, tags | {"gate_cells_hash": gate_cells_hash}

    with resumed_run(run_id):
        log_params_once(params.flat(["register"]))
        published = publish(
            onnx.load(str(paths.onnx)),
            candidate_model,
            judgement,
            model_name=config.model_name,
            config=config,
            example=test.X[:2].toarray().astype(np.float32),
            trainable_files=(paths.model, paths.preprocessor),
            card=card,
            provenance=provenance,
            model_description=MODEL_DESCRIPTION,
        )
        _log_gate(published)

    record = _registry_record(
        published, judgement.candidate, run_id, previous_champion=judgement.judged_against
    )
    write_json(paths.registry, record)
    write_metrics_json(paths.register_metrics, {k: v for k, v in record.items() if k not in STORE_DEPENDENT})
    h2h = published.decision.head_to_head
    if isinstance(h2h, HeadToHead):
        logger.info(
            "gate, on the same %d unseen cells (evaluation set %s): candidate F1 %.3f ROC-AUC %.3f; "
            "champion v%s F1 %.3f ROC-AUC %.3f",
            h2h.n_cells,
            h2h.cells_hash,
            h2h.candidate["f1"],
            h2h.candidate["roc_auc"],
            h2h.champion_version,
            h2h.champion["f1"],
            h2h.champion["roc_auc"],
        )
