"""Register the exported ONNX model in MLflow and decide whether it becomes champion.

Promotion gate: a new version becomes ``champion`` only when its test F1 and
ROC-AUC pass the thresholds in params.yaml *and* it is not worse than the
current champion scored on the very same cells, both through onnxruntime here
(neither side's earlier figures are trusted). Those cells are the candidate's
test cells minus any sample the champion was fitted or early-stopped on, so the
champion is never scored on cells it has seen, and each model is scored at its
own decision threshold, as it would be deployed. When no fair comparison is
possible (the champion needs genes these cells lack, or no unseen cells of both
classes remain) the new version is not promoted and the reason says so. Otherwise it
gets the ``challenger`` alias. Aliases replace MLflow's deprecated stages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from oncopersistnet.config import RegisterConfig
from oncopersistnet.errors import InputDataError
from oncopersistnet.evaluation.metrics import classification_metrics
from oncopersistnet.inference.align import aligned_block, match_genes
from oncopersistnet.inference.model import OnnxPersisterModel

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
GATE_METRICS = ("f1", "roc_auc")


@dataclass(frozen=True)
class HeadToHead:
    """Candidate and champion scored on the same unseen cells."""

    candidate: dict[str, float]
    champion: dict[str, float]
    champion_version: str
    n_cells: int
    cells_hash: str = ""


@dataclass
class PromotionDecision:
    """Which alias a new version gets, and why."""

    alias: str
    reason: str
    candidate: dict[str, float]
    head_to_head: HeadToHead | None = None
    checks: list[str] = field(default_factory=list)


def score_on_cells(
    model: OnnxPersisterModel,
    counts: np.ndarray | sparse.spmatrix,
    genes: np.ndarray,
    y: np.ndarray,
    min_gene_fraction: float = 0.0,
) -> dict[str, float]:
    """Metrics of an ONNX model on raw counts (cells x ``genes``) at the model's own threshold."""
    match = match_genes(
        genes, model.genes, min_gene_fraction, source=model.source, selected_genes=model.selected_genes
    )
    probability = model.predict_proba(aligned_block(counts, match))
    metrics = classification_metrics(y, probability, model.threshold)
    metrics["gene_match_fraction"] = match.fraction
    return metrics


def head_to_head(
    candidate: OnnxPersisterModel,
    champion: OnnxPersisterModel,
    champion_version: str,
    counts: np.ndarray | sparse.spmatrix,
    genes: np.ndarray,
    y: np.ndarray,
    samples: np.ndarray,
    cell_ids: np.ndarray | None = None,
) -> HeadToHead | str:
    """Score both models on the test cells the champion never saw; a reason string if impossible.

    The champion must find every one of its genes: with some missing, imputation
    and smaller library sizes would handicap it and the comparison would be unfair.
    """
    unseen = ~np.isin(np.asarray(samples, dtype=str), champion.fit_samples)
    if len(np.unique(y[unseen])) < 2:
        return (
            f"champion v{champion_version} cannot be compared fairly: only {int(unseen.sum())} of {len(y)} test cells "
            "come from samples it was not fitted on, and they do not cover both classes"
        )
    try:
        champion_metrics = score_on_cells(champion, counts[unseen], genes, y[unseen], min_gene_fraction=1.0)
    except InputDataError as exc:
        return (
            f"champion v{champion_version} cannot be compared fairly: it needs genes these cells lack ({exc})"
        )
    candidate_metrics = score_on_cells(candidate, counts[unseen], genes, y[unseen])
    from oncopersistnet.tracking import data_hash

    # The evaluation set, frozen by content: counts, labels, samples, genes and cell ids of the cells both were scored on.
    cells = np.asarray(cell_ids if cell_ids is not None else np.arange(len(y)), dtype=str)[unseen]
    cells_hash = data_hash(
        counts[unseen],
        y[unseen].astype(str),
        np.asarray(samples, dtype=str)[unseen],
        genes=np.asarray(genes, dtype=str),
        cells=cells,
    )
    return HeadToHead(candidate_metrics, champion_metrics, champion_version, int(unseen.sum()), cells_hash)


def decide_promotion(
    candidate: dict[str, float],
    config: RegisterConfig,
    comparison: HeadToHead | str | None = None,
) -> PromotionDecision:
    """Apply the gate: absolute thresholds first, then no regression against the champion.

    ``comparison`` is None when there is no champion, a :class:`HeadToHead`, or
    the reason no fair comparison was possible (then the candidate is not promoted).
    """
    failures = []
    if not candidate["f1"] >= config.min_f1:
        failures.append(f"test F1 {candidate['f1']:.3f} < required {config.min_f1:.3f}")
    if not candidate["roc_auc"] >= config.min_roc_auc:
        failures.append(f"test ROC-AUC {candidate['roc_auc']:.3f} < required {config.min_roc_auc:.3f}")
    if isinstance(comparison, str):
        failures.append(comparison + "; promote it by hand or register per dataset (register.model_name)")
        comparison = None
    elif comparison is not None:
        for name in GATE_METRICS:
            if comparison.candidate[name] < comparison.champion[name] - config.tolerance:
                failures.append(
                    f"{name} {comparison.candidate[name]:.3f} is worse than champion v{comparison.champion_version}'s "
                    f"{comparison.champion[name]:.3f} on the same {comparison.n_cells} unseen test cells"
                )
    if failures:
        return PromotionDecision(CHALLENGER, "; ".join(failures), candidate, comparison, failures)
    if comparison is None:
        reason = "passes thresholds; no champion yet"
    else:
        reason = (
            f"passes thresholds and is not worse than champion v{comparison.champion_version} on the same "
            f"{comparison.n_cells} unseen test cells (F1 {comparison.candidate['f1']:.3f} vs {comparison.champion['f1']:.3f}, "
            f"ROC-AUC {comparison.candidate['roc_auc']:.3f} vs {comparison.champion['roc_auc']:.3f})"
        )
    return PromotionDecision(CHAMPION, reason, candidate, comparison)


def current_champion(model_name: str) -> Any | None:
    """The model version holding the champion alias, or None."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        return client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None
