"""Register the exported ONNX model in MLflow and decide whether it becomes champion.

Promotion gate: a new version becomes ``champion`` only when its test F1 and
ROC-AUC pass the thresholds in params.yaml *and* it is not worse than the
current champion scored on the very same test cells (both run through
onnxruntime here, so neither side's own earlier figures are trusted). Otherwise
it gets the ``challenger`` alias and the reason is logged and returned.
Aliases replace MLflow's deprecated stages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from oncopersistnet.config import RegisterConfig
from oncopersistnet.evaluation.metrics import classification_metrics
from oncopersistnet.inference.align import aligned_block, match_genes
from oncopersistnet.inference.model import OnnxPersisterModel

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
GATE_METRICS = ("f1", "roc_auc")


@dataclass
class PromotionDecision:
    """Which alias a new version gets, and why."""

    alias: str
    reason: str
    candidate: dict[str, float]
    champion: dict[str, float] | None = None
    champion_version: str | None = None
    checks: list[str] = field(default_factory=list)


def score_on_cells(model: OnnxPersisterModel, counts: np.ndarray, genes: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, float]:
    """Metrics of an ONNX model on raw counts (cells x ``genes``), aligned to its own gene list."""
    match = match_genes(genes, model.genes, min_fraction=0.0)
    probability = model.predict_proba(aligned_block(np.asarray(counts, dtype=np.float32), match))
    metrics = classification_metrics(y, probability, threshold)
    metrics["gene_match_fraction"] = match.fraction
    return metrics


def decide_promotion(
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    config: RegisterConfig,
    champion_version: str | None = None,
) -> PromotionDecision:
    """Apply the gate: absolute thresholds first, then no regression against the champion."""
    failures = []
    if not candidate["f1"] >= config.min_f1:
        failures.append(f"test F1 {candidate['f1']:.3f} < required {config.min_f1:.3f}")
    if not candidate["roc_auc"] >= config.min_roc_auc:
        failures.append(f"test ROC-AUC {candidate['roc_auc']:.3f} < required {config.min_roc_auc:.3f}")
    if champion is not None:
        for name in GATE_METRICS:
            if candidate[name] < champion[name] - config.tolerance:
                failures.append(
                    f"{name} {candidate[name]:.3f} is worse than champion v{champion_version}'s "
                    f"{champion[name]:.3f} on the same test cells"
                )
    if failures:
        return PromotionDecision(CHALLENGER, "; ".join(failures), candidate, champion, champion_version, failures)
    if champion is None:
        reason = "passes thresholds; no champion yet"
    else:
        reason = (
            f"passes thresholds and is not worse than champion v{champion_version} on the same test cells "
            f"(F1 {candidate['f1']:.3f} vs {champion['f1']:.3f}, ROC-AUC {candidate['roc_auc']:.3f} vs {champion['roc_auc']:.3f})"
        )
    return PromotionDecision(CHAMPION, reason, candidate, champion, champion_version)


def current_champion(model_name: str) -> Any | None:
    """The model version holding the champion alias, or None."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        return client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None
