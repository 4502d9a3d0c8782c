"""Stage register: log the ONNX model to MLflow, register a version, apply the promotion gate."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx

from oncopersistnet.atomic import write_json
from oncopersistnet.config import Params, RegisterConfig
from oncopersistnet.inference.model import OnnxPersisterModel, gene_list_digest
from oncopersistnet.inference.resolve import GENES_DIGEST_TAG, load_model
from oncopersistnet.model_card import build_model_card
from oncopersistnet.model_source import ARTIFACT_DIR
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.preprocessing.outputs import read_preprocess_summary, read_split_cells
from oncopersistnet.registry import (
    CHALLENGER,
    CHAMPION,
    HeadToHead,
    PromotionDecision,
    current_champion,
    decide_promotion,
    head_to_head,
    score_on_cells,
)
from oncopersistnet.registry_client import ChampionMoved, promote, set_alias
from oncopersistnet.tracking import (
    configure_mlflow,
    dvc_experiment_name,
    load_run_id,
    log_params_once,
    resumed_run,
)

logger = logging.getLogger(__name__)

PIP_REQUIREMENTS = ["onnxruntime==1.32.0", "onnx==1.23.2", "numpy==2.4.6"]
MODEL_DESCRIPTION = (
    "OncoPersistNet: classifies single cancer cells from scRNA-seq raw counts as drug-tolerant persisters "
    "(cells that survive treatment and seed relapse) or non-persisters. Each version is an ONNX graph that "
    "includes normalisation, gene selection, imputation, PCA and the CNN-LSTM; the alias 'champion' marks "
    "the version that passed the promotion gate. Intended for cells like those it was trained on (see each "
    "version's description); not a clinical tool."
)


def log_and_register(
    proto: onnx.ModelProto,
    model: OnnxPersisterModel,
    example: np.ndarray,
    model_name: str,
    trainable_files: tuple[Path, Path],
) -> str:
    """In the active run: log the ONNX model (signature, example) and register it under ``model_name``;
    log its trainable form (checkpoint, preprocessor) under ``pytorch/``, where `explain` and `transfer`
    find it. Returns the new version."""
    import mlflow
    from mlflow.models import infer_signature

    info = mlflow.onnx.log_model(
        proto,
        name="model",
        signature=infer_signature(example, model.predict_proba(example)),
        input_example=example,
        registered_model_name=model_name,
        pip_requirements=PIP_REQUIREMENTS,
        save_as_external_data=False,
        onnx_execution_providers=["CPUExecutionProvider"],
    )
    for path in trainable_files:
        mlflow.log_artifact(str(path), artifact_path=ARTIFACT_DIR)
    version = str(info.registered_model_version)
    # load_model refuses an artifact whose genes no longer match this digest (swapped after registration)
    mlflow.MlflowClient().set_model_version_tag(
        model_name, version, GENES_DIGEST_TAG, gene_list_digest(model.genes)
    )
    return version


def gate_decision(
    candidate: dict[str, float], config: RegisterConfig, comparison: HeadToHead | str | None
) -> PromotionDecision:
    """The promotion gate's verdict, except that a DVC experiment never takes ``champion``."""
    decision = decide_promotion(candidate, config, comparison)
    experiment = dvc_experiment_name()
    if experiment and decision.alias == CHAMPION:
        # A sweep must not move what `predict` serves: the last passing experiment would win.
        decision.alias = CHALLENGER
        decision.reason = (
            f"DVC experiment {experiment} passes the gate ({decision.reason}) but experiments never move "
            f"champion; to promote it: dvc exp apply {experiment} && dvc repro -f -s register"
        )
    return decision


def apply_decision(
    model_name: str, version: str, decision: PromotionDecision, judged_against: str | None
) -> None:
    """Move ``champion`` through :func:`promote` (recorded for rollback), or set the other alias.

    ``judged_against`` is the champion version the gate compared with (None: there
    was none). If another registration moved ``champion`` meanwhile, this version
    becomes ``challenger`` instead and ``decision`` says why: it was never
    compared with the new champion. Tags ``promotion_decision``/``promotion_reason``
    record the outcome on the version. Call it last, once the version is complete.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    moved = False
    if decision.alias == CHAMPION:
        try:
            promote(
                model_name, version, decision.reason, expected_champion=judged_against
            )  # recorded for rollback
            moved = True
        except ChampionMoved as exc:
            decision.alias = CHALLENGER
            decision.reason = f"passed the gate ({decision.reason}) but lost a race: {exc}"
    if not moved:
        set_alias(model_name, decision.alias, version)  # under the lock: losers of a race set it at once
    # the decision when registered; the current aliases live on the registered model
    client.set_model_version_tag(model_name, version, "promotion_decision", decision.alias)
    client.set_model_version_tag(model_name, version, "promotion_reason", decision.reason)


def run(params: Params, paths: ProjectPaths) -> None:
    """Register a new version; alias it champion or challenger; write ``models/registry.json``."""
    import mlflow
    from mlflow import MlflowClient

    config = params.register
    configure_mlflow(params.mlflow, paths.root)
    run_id = load_run_id(paths.run_reference)
    test = read_split_cells(paths, "test")  # sparse; scoring densifies only the model's genes
    candidate_model = OnnxPersisterModel(paths.onnx)  # carries evaluate.threshold from export
    candidate = score_on_cells(candidate_model, test.X, test.genes, test.y)
    champion_version = current_champion(config.model_name)
    comparison = None
    if champion_version is not None:
        champion_model = load_model(f"models:/{config.model_name}/{champion_version.version}")
        comparison = head_to_head(
            candidate_model,
            champion_model,
            str(champion_version.version),
            test.X,
            test.genes,
            test.y,
            test.samples,
            test.cell_ids,
        )

    example = test.X[:2].toarray().astype(np.float32)
    with resumed_run(run_id):
        log_params_once(params.flat(["register"]))
        version = log_and_register(
            onnx.load(str(paths.onnx)),
            candidate_model,
            example,
            config.model_name,
            (paths.model, paths.preprocessor),
        )
        decision = gate_decision(candidate, config, comparison)
        client = MlflowClient()
        if not client.get_registered_model(config.model_name).description:
            client.update_registered_model(config.model_name, description=MODEL_DESCRIPTION)
        card, card_tags = build_model_card(
            params,
            version,
            len(candidate_model.genes),
            candidate_model.metadata,
            read_preprocess_summary(paths),
            json.loads(paths.evaluate_metrics.read_text()),
            json.loads(paths.comparison_metrics.read_text()),
            candidate,
        )
        client.update_model_version(config.model_name, version, description=card)
        gate = decision.head_to_head
        card_tags["gate_cells_hash"] = gate.cells_hash if isinstance(gate, HeadToHead) else ""
        for key, value in card_tags.items():
            client.set_model_version_tag(config.model_name, version, key, value)
        # Last: the alias moves only once the version's card and tags are complete (a /reload may follow at once).
        apply_decision(
            config.model_name, version, decision, str(champion_version.version) if champion_version else None
        )
        mlflow.set_tags(
            {
                "registered_version": version,
                "promotion_alias": decision.alias,
                "promotion_reason": decision.reason,
            }
        )
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

    h2h = decision.head_to_head
    write_json(
        paths.registry,
        {
            "model_name": config.model_name,
            "version": version,
            "alias": decision.alias,
            "reason": decision.reason,
            "run_id": run_id,
            "model_uri": f"models:/{config.model_name}/{version}",
            "candidate_test_metrics": candidate,
            "previous_champion_version": str(champion_version.version) if champion_version else None,
            "head_to_head": None
            if h2h is None
            else {
                "cells": h2h.n_cells,
                "cells_hash": h2h.cells_hash,
                "candidate": h2h.candidate,
                "champion": h2h.champion,
            },
        },
    )
    log = logger.info if decision.alias == CHAMPION else logger.warning
    log("registered %s version %s as %s: %s", config.model_name, version, decision.alias, decision.reason)
    if isinstance(h2h, HeadToHead):
        logger.info(
            "gate, on the same %d unseen cells (evaluation set %s): candidate F1 %.3f ROC-AUC %.3f; champion v%s F1 %.3f ROC-AUC %.3f",
            h2h.n_cells,
            h2h.cells_hash,
            h2h.candidate["f1"],
            h2h.candidate["roc_auc"],
            h2h.champion_version,
            h2h.champion["f1"],
            h2h.champion["roc_auc"],
        )
