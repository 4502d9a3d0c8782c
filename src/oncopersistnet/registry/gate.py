"""The promotion gate: does a new version become ``champion`` or ``challenger``?

A new version becomes ``champion`` only when its test F1 and ROC-AUC pass the
thresholds in params.yaml *and* it is not worse than the current champion scored
on the very same cells, both through onnxruntime here (neither side's earlier
figures are trusted). Those cells are the candidate's test cells minus any sample
the champion was fitted or early-stopped on, so the champion is never scored on
cells it has seen, and each model is scored at its own decision threshold, as it
would be deployed. When no fair comparison is possible (the champion needs genes
these cells lack, or no unseen cells of both classes remain) the new version is
not promoted and the reason says so. Otherwise it gets the ``challenger`` alias.
A DVC experiment never takes ``champion``: a sweep must not move what is served.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from oncopersistnet.config import RegisterConfig
from oncopersistnet.data.cells import Cells
from oncopersistnet.errors import InputDataError
from oncopersistnet.evaluation.metrics import classification_metrics
from oncopersistnet.inference.align import aligned_block, match_genes
from oncopersistnet.inference.conformal import coverage_by_class
from oncopersistnet.inference.model import OnnxPersisterModel
from oncopersistnet.registry.aliases import current_champion_version
from oncopersistnet.registry.resolve import load_model
from oncopersistnet.registry.uri import CHALLENGER, CHAMPION, version_uri
from oncopersistnet.tracking import data_hash, dvc_experiment_name

logger = logging.getLogger(__name__)

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
    model: OnnxPersisterModel, cells: Cells, *, min_gene_fraction: float = 0.0, coverage: float | None = None
) -> dict[str, float]:
    """Metrics of an ONNX model on raw counts (``cells.X`` over ``cells.genes``) at its own threshold.

    With ``coverage``, also what the model says of its own calls on these cells: the conformal
    sets' coverage of each class and their split (singleton, both, empty), the share of cells
    flagged out of distribution and the flag's threshold (for a model that carries them).
    """
    match = match_genes(
        cells.genes,
        model.genes,
        min_fraction=min_gene_fraction,
        source=model.source,
        selected_genes=model.selected_genes,
    )
    probability, distance = model.predict(aligned_block(cells.X, match))
    metrics = classification_metrics(cells.y, probability, model.threshold)
    metrics["gene_match_fraction"] = match.fraction
    if coverage is not None and model.conformal is not None:
        sets = model.conformal.sets(probability, coverage)
        metrics |= {f"conformal_{k}": v for k, v in coverage_by_class(sets, cells.y).items()}
        metrics["conformal_target_coverage"] = coverage
    if coverage is not None and model.ood_threshold is not None:
        metrics["ood_fraction"] = float(np.mean(distance > model.ood_threshold))
        metrics["ood_threshold"] = model.ood_threshold
    return metrics


def head_to_head(
    candidate: OnnxPersisterModel, champion: OnnxPersisterModel, champion_version: str, *, cells: Cells
) -> HeadToHead | str:
    """Score both models on the test cells the champion never saw; a reason string if impossible.

    The champion must find every one of its genes: with some missing, imputation
    and smaller library sizes would handicap it and the comparison would be unfair.
    """
    unseen = cells.subset(~np.isin(cells.samples, champion.fit_samples))
    if len(np.unique(unseen.y)) < 2:
        return (
            f"champion v{champion_version} cannot be compared fairly: only {unseen.n_cells} of "
            f"{cells.n_cells} test cells come from samples it was not fitted on, and they do not cover "
            "both classes"
        )
    try:
        champion_metrics = score_on_cells(champion, unseen, min_gene_fraction=1.0)
    except InputDataError as exc:
        return (
            f"champion v{champion_version} cannot be compared fairly: it needs genes these cells lack ({exc})"
        )
    candidate_metrics = score_on_cells(candidate, unseen)
    # The evaluation set, frozen by content: counts, labels, samples, genes and cell ids of the cells
    # both were scored on.
    cells_hash = data_hash(
        unseen.X, unseen.y.astype(str), unseen.samples, genes=unseen.genes, cells=unseen.cell_ids
    )
    return HeadToHead(candidate_metrics, champion_metrics, champion_version, unseen.n_cells, cells_hash)


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
                    f"{name} {comparison.candidate[name]:.3f} is worse than "
                    f"champion v{comparison.champion_version}'s "
                    f"{comparison.champion[name]:.3f} on the same {comparison.n_cells} unseen test cells"
                )
    if failures:
        return PromotionDecision(CHALLENGER, "; ".join(failures), candidate, comparison, failures)
    if comparison is None:
        reason = "passes thresholds; no champion yet"
    else:
        reason = (
            f"passes thresholds and is not worse than champion v{comparison.champion_version} on the same "
            f"{comparison.n_cells} unseen test cells "
            f"(F1 {comparison.candidate['f1']:.3f} vs {comparison.champion['f1']:.3f}, "
            f"ROC-AUC {comparison.candidate['roc_auc']:.3f} vs {comparison.champion['roc_auc']:.3f})"
        )
    return PromotionDecision(CHAMPION, reason, candidate, comparison)


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


@dataclass(frozen=True)
class Judgement:
    """A candidate's figures and its comparison with the champion, made before it is registered."""

    candidate: dict[str, float]
    comparison: HeadToHead | str | None
    judged_against: str | None  # the champion version compared with; None when there was none


def judge_candidate(
    candidate: OnnxPersisterModel, model_name: str, *, cells: Cells, coverage: float
) -> Judgement:
    """Score ``candidate`` on its test cells and, when ``model_name`` has a champion, both on the unseen ones.

    The champion is loaded pinned to its version, so the comparison and the
    compare-and-set of :func:`oncopersistnet.registry.aliases.promote` name the same one. The
    candidate's figures include its conformal coverage (at ``coverage``) and out-of-distribution
    rate on the test cells; they are reported on the card, not gated on (two test samples give
    a coarse estimate, and the gate's floors are about the calls themselves).
    """
    figures = score_on_cells(candidate, cells, coverage=coverage)
    champion_version = current_champion_version(model_name)
    comparison = None
    if champion_version is not None:
        champion = load_model(version_uri(model_name, champion_version))
        comparison = head_to_head(candidate, champion, champion_version, cells=cells)
    return Judgement(figures, comparison, champion_version)
