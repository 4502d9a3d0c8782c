"""Publish a judged ONNX model: log it, register a version, describe it, move its alias.

The register stage and ``transfer`` publish the same way; one sequence here keeps
them from drifting apart. Inside the caller's active MLflow run it logs the ONNX
model (signature, example, pinned requirements) and its trainable form under
``pytorch/``, registers a version, records the gene digest that
:func:`oncopersistnet.registry.resolve.load_model` checks, applies the promotion
gate, writes the version's description and tags, and moves the alias last, once
the version is complete (a server's ``/reload`` may follow at once).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from oncopersistnet.config import RegisterConfig
from oncopersistnet.inference.model import DISTANCE_NAME, OUTPUT_NAME, OnnxPersisterModel, gene_list_digest
from oncopersistnet.registry.aliases import ChampionMoved, promote, set_alias
from oncopersistnet.registry.gate import Judgement, PromotionDecision, gate_decision
from oncopersistnet.registry.resolve import GENES_DIGEST_TAG
from oncopersistnet.registry.trainable import ARTIFACT_DIR
from oncopersistnet.registry.uri import CHALLENGER, CHAMPION, version_uri

logger = logging.getLogger(__name__)

PIP_REQUIREMENTS = ["onnxruntime==1.32.0", "onnx==1.23.2", "numpy==2.4.6"]

# A version number -> (Markdown description, tags) of that version: the card needs the number.
VersionCard = Callable[[str], tuple[str, dict[str, str]]]


@dataclass(frozen=True)
class Publication:
    """The registered version and the gate's decision on it."""

    model_name: str
    version: str
    decision: PromotionDecision

    @property
    def model_uri(self) -> str:
        return version_uri(self.model_name, self.version)


def with_provenance(proto: onnx.ModelProto, provenance: Mapping[str, str]) -> onnx.ModelProto:
    """A copy of ``proto`` whose ``metadata_props`` also hold ``provenance`` (run id, git commit, parent).

    The DVC-tracked ``.onnx`` leaves out what differs per clone and per MLflow store, so that
    ``dvc.lock`` is the same on every machine; the registered copy, the one users deploy, carries it.
    The graph is untouched: the same genes, signature and outputs as the file the gate judged.
    """
    stamped = onnx.ModelProto()
    stamped.CopyFrom(proto)
    props = {p.key: p.value for p in stamped.metadata_props} | {k: str(v) for k, v in provenance.items()}
    onnx.helper.set_model_props(stamped, props)
    return stamped


def log_and_register(
    proto: onnx.ModelProto,
    model: OnnxPersisterModel,
    example: np.ndarray,
    *,
    model_name: str,
    trainable_files: tuple[Path, Path],
    provenance: Mapping[str, str],
) -> str:
    """In the active run: log the ONNX model (signature, example), with ``provenance`` added to its
    metadata (:func:`with_provenance`), and register it under ``model_name``; log its trainable form
    (checkpoint, preprocessor) under ``pytorch/``, where `explain` and `transfer` find it. Returns the
    new version."""
    import mlflow
    from mlflow.models import infer_signature

    probability, distance = model.predict(example)
    # both graph outputs in the signature: MLflow's pyfunc returns both columns
    outputs = {OUTPUT_NAME: probability, DISTANCE_NAME: distance} if model.has_distance else probability
    info = mlflow.onnx.log_model(
        with_provenance(proto, provenance),
        name="model",
        signature=infer_signature(example, outputs),
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


def apply_decision(
    model_name: str, version: str, decision: PromotionDecision, *, judged_against: str | None
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
            promote(model_name, version, decision.reason, expected_champion=judged_against)  # for rollback
            moved = True
        except ChampionMoved as exc:
            decision.alias = CHALLENGER
            decision.reason = f"passed the gate ({decision.reason}) but lost a race: {exc}"
    if not moved:
        set_alias(model_name, decision.alias, version)  # under the lock: losers of a race set it at once
    # the decision when registered; the current aliases live on the registered model
    client.set_model_version_tag(model_name, version, "promotion_decision", decision.alias)
    client.set_model_version_tag(model_name, version, "promotion_reason", decision.reason)


def publish(
    proto: onnx.ModelProto,
    candidate: OnnxPersisterModel,
    judgement: Judgement,
    *,
    model_name: str,
    config: RegisterConfig,
    example: np.ndarray,
    trainable_files: tuple[Path, Path],
    card: VersionCard,
    provenance: Mapping[str, str],
    model_description: str | None = None,
) -> Publication:
    """Register ``candidate`` in the active run and give it the alias the gate decides; see the module doc.

    ``provenance``: metadata the registered ONNX copy carries and the exported file does not
    (:func:`with_provenance`). ``model_description`` describes the registered model itself, set once
    when it has none.
    The run gets tags ``registered_version`` and ``promotion_alias``.
    """
    import mlflow
    from mlflow import MlflowClient

    version = log_and_register(
        proto,
        candidate,
        example,
        model_name=model_name,
        trainable_files=trainable_files,
        provenance=provenance,
    )
    decision = gate_decision(judgement.candidate, config, judgement.comparison)
    client = MlflowClient()
    if model_description and not client.get_registered_model(model_name).description:
        client.update_registered_model(model_name, description=model_description)
    description, tags = card(version)
    client.update_model_version(model_name, version, description=description)
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    apply_decision(model_name, version, decision, judged_against=judgement.judged_against)
    mlflow.set_tags({"registered_version": version, "promotion_alias": decision.alias})
    log = logger.info if decision.alias == CHAMPION else logger.warning
    log("registered %s version %s as %s: %s", model_name, version, decision.alias, decision.reason)
    return Publication(model_name, version, decision)
