"""Paired differences of every family against a reference family, with a bootstrap over test samples.

Why samples, not cells: the cells of one culture share its batch, its depth and its
treatment, so they are not independent draws; the unit a new experiment brings is a
sample. Resampling cells would treat a few thousand correlated cells as a few thousand
independent observations and give intervals far too narrow to mean anything. So each
resample draws whole held-out samples with replacement (within each class, so that every
resample holds both classes and ROC-AUC stays defined) and weights every cell of a drawn
sample by how often its sample was drawn.

Why paired: every family is scored on the same resample of the same cells, so the
difference is free of the luck of which samples were drawn; the families' own spreads
would overlap long before a real difference became visible.

The predictions are the pooled out-of-fold ones: with grouped k-fold each sample is
tested exactly once, so per seed every family has one probability per held-out cell.
A family whose fit does not depend on the seed has one fit per fold, paired with every
seed of the reference. The difference (and each resample's) is averaged over seeds.
The interval is the percentile interval; the verdict is ``better`` or ``worse`` when it
excludes 0, ``level`` otherwise, and ``untested`` when a class has fewer than
:data:`MIN_SAMPLES_PER_CLASS` held-out samples: a class of one sample is the same in every
resample, so the interval would shrink towards a point and call any difference significant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from oncopersistnet.errors import DataValidationError
from oncopersistnet.evaluation.fits import FitResult

#: The threshold-free metrics compared (the names of :data:`~oncopersistnet.evaluation.metrics.METRIC_NAMES`).
PAIRED_METRICS = ("roc_auc", "pr_auc")

#: Held-out samples each class needs before a bootstrap over samples can say better or worse.
MIN_SAMPLES_PER_CLASS = 2


def weighted_roc_auc(y: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC-AUC of ``score`` with one row of cell ``weights`` per resample (ties count one half).

    Equal to ``sklearn.metrics.roc_auc_score(y, score, sample_weight=w)`` for every row ``w``;
    the sort is done once for all rows.
    """
    order = np.argsort(score, kind="mergesort")
    s, positive = score[order], y[order] == 1
    w = weights[:, order]
    # tie groups: every cell of a group sees the negatives strictly below it plus half of its group's
    starts = np.r_[0, np.flatnonzero(np.diff(s)) + 1]
    group = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, s.size]))
    neg_in_group = np.add.reduceat(np.where(positive, 0.0, w), starts, axis=1)
    neg_below = np.cumsum(neg_in_group, axis=1) - neg_in_group
    credit = neg_below + 0.5 * neg_in_group
    pos_w = np.where(positive, w, 0.0)
    w_pos, w_neg = pos_w.sum(axis=1), w.sum(axis=1) - pos_w.sum(axis=1)
    return (pos_w * credit[:, group]).sum(axis=1) / (w_pos * w_neg)


def weighted_average_precision(y: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average precision (PR-AUC as scikit-learn defines it) per row of cell ``weights``.

    Equal to ``sklearn.metrics.average_precision_score(y, score, sample_weight=w)``:
    the sum over distinct thresholds, high to low, of the recall gained times the precision there.
    """
    order = np.argsort(-score, kind="mergesort")
    s, positive = score[order], y[order] == 1
    w = weights[:, order]
    ends = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last cell of each tie group
    tp = np.cumsum(np.where(positive, w, 0.0), axis=1)[:, ends]
    called = np.cumsum(w, axis=1)[:, ends]
    precision = np.divide(tp, called, out=np.zeros_like(tp), where=called > 0)
    recall = tp / tp[:, -1:]
    gained = np.diff(np.c_[np.zeros(len(w)), recall], axis=1)
    return (gained * precision).sum(axis=1)


METRIC_FUNCTIONS = {"roc_auc": weighted_roc_auc, "pr_auc": weighted_average_precision}


def sample_weights(
    samples: np.ndarray, y: np.ndarray, *, resamples: int, seed: int
) -> tuple[np.ndarray, list[str]]:
    """Cell weights, one row per resample: each class's samples drawn with replacement, as many as it has.

    Also returns the held-out samples in the order drawn. A sample's class is its cells' majority.
    """
    names = sorted({str(s) for s in samples})
    index = {name: i for i, name in enumerate(names)}
    cell_sample = np.array([index[str(s)] for s in samples])
    sample_class = np.array([int(y[cell_sample == i].mean() >= 0.5) for i in range(len(names))])
    rng = np.random.default_rng(seed)
    counts = np.zeros((resamples, len(names)))
    for label in (0, 1):
        members = np.flatnonzero(sample_class == label)
        if members.size == 0:
            continue
        draws = rng.integers(0, members.size, size=(resamples, members.size))
        for column in range(members.size):
            np.add.at(counts, (np.arange(resamples), members[draws[:, column]]), 1.0)
    return counts[:, cell_sample], names


def _samples_per_class(samples: np.ndarray, y: np.ndarray) -> list[int]:
    """Held-out samples of each class (non-persister, persister), a sample's class its cells' majority."""
    names = np.asarray(samples, dtype=str)
    classes = [int(y[names == s].mean() >= 0.5) for s in np.unique(names)]
    return [classes.count(0), classes.count(1)]


@dataclass(frozen=True)
class Pooled:
    """One family's out-of-fold predictions at one seed: the test cells of every fold, folds in order."""

    probability: np.ndarray
    y: np.ndarray
    samples: np.ndarray
    per_fold: list[FitResult]


def pooled_predictions(fits: Sequence[FitResult], folds: Sequence[str], seed: int) -> Pooled | None:
    """Out-of-fold predictions at ``seed`` (or the one fit per fold of an unseeded family).

    ``None`` when a fold has no such fit.
    """
    chosen = []
    for fold in folds:
        mine = [f for f in fits if f.fold == fold]
        match = [f for f in mine if f.seed == seed] or (mine if len(mine) == 1 else [])
        if not match:
            return None
        chosen.append(match[0])
    return Pooled(
        probability=np.concatenate([np.asarray(f.probability, dtype=np.float64) for f in chosen]),
        y=np.concatenate([np.asarray(f.y) for f in chosen]),
        samples=np.concatenate([np.asarray(f.samples, dtype=str) for f in chosen]),
        per_fold=chosen,
    )


def verdict(low: float, high: float, *, testable: bool = True) -> str:
    """``better`` / ``worse`` when the interval excludes 0 on that side, ``level`` otherwise;
    ``untested`` when too few samples were held out for the interval to mean anything."""
    if not testable:
        return "untested"
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "level"


def _interval(differences: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(differences, [tail, 100 - tail])
    return float(low), float(high)


def _seed_mean(pooled: Mapping[int, Pooled], metric: str, weights: np.ndarray) -> np.ndarray:
    """``metric`` of the pooled predictions per row of ``weights``, averaged over seeds."""
    return np.mean([METRIC_FUNCTIONS[metric](p.y, p.probability, weights) for p in pooled.values()], axis=0)


def _scores(pooled: Mapping[int, Pooled], weights: np.ndarray) -> dict[str, tuple[float, np.ndarray]]:
    """Per metric: the value on all held-out cells and the value on every resample, averaged over seeds."""
    ones = np.ones((1, weights.shape[1]))
    return {
        m: (float(_seed_mean(pooled, m, ones)[0]), _seed_mean(pooled, m, weights)) for m in PAIRED_METRICS
    }


def _family_entry(
    pooled: Mapping[int, Pooled],
    reference: Mapping[int, Pooled],
    scores: tuple[Mapping[str, tuple[float, np.ndarray]], Mapping[str, tuple[float, np.ndarray]]],
    *,
    level: float,
    testable: bool,
) -> dict[str, Any]:
    """One family against the reference: per metric the pooled values, the difference, its interval
    and verdict; and the difference of every fit's own metric, per fold and seed.

    ``scores``: :func:`_scores` of the family and of the reference, on the same resamples.
    """
    mine, theirs = scores
    entry: dict[str, Any] = {}
    for metric in PAIRED_METRICS:
        (point, boot), (ref_point, ref_boot) = mine[metric], theirs[metric]
        low, high = _interval(boot - ref_boot, level)
        entry[metric] = {
            "pooled": point,
            "reference_pooled": ref_point,
            "difference": point - ref_point,
            "low": low,
            "high": high,
            "verdict": verdict(low, high, testable=testable),
        }
    entry["per_fit"] = [
        {"fold": fit.fold, "seed": seed}
        | {m: float(fit.metrics[m] - other.metrics[m]) for m in PAIRED_METRICS}
        for seed, p in pooled.items()
        for fit, other in zip(p.per_fold, reference[seed].per_fold, strict=True)
    ]
    return entry


def paired_comparison(
    fits: Sequence[FitResult],
    *,
    reference: str,
    resamples: int,
    seed: int,
    level: float,
) -> dict[str, Any] | None:
    """Every other family against ``reference``, on the same bootstrap resamples of the held-out samples.

    ``None`` when the reference family was not fitted. A family's ``per_fit`` differences pair each of
    its fits with the reference's fit of the same fold and seed (an unseeded family's one fit per fold
    with every seed); ``fold`` in them is the family's fit's fold.
    """
    ref_fits = [f for f in fits if f.family == reference]
    if not ref_fits:
        return None
    folds = list(dict.fromkeys(f.fold for f in ref_fits))
    seeds = sorted({f.seed for f in ref_fits})
    reference_pooled = {s: pooled_predictions(ref_fits, folds, s) for s in seeds}
    first = reference_pooled[seeds[0]]
    weights, names = sample_weights(first.samples, first.y, resamples=resamples, seed=seed)
    per_class = _samples_per_class(first.samples, first.y)
    testable = min(per_class) >= MIN_SAMPLES_PER_CLASS
    reference_scores = _scores(reference_pooled, weights)
    families: dict[str, Any] = {}
    for family in dict.fromkeys(f.family for f in fits if f.family != reference):
        pooled = {s: pooled_predictions([f for f in fits if f.family == family], folds, s) for s in seeds}
        if any(p is None for p in pooled.values()):
            continue
        for p in pooled.values():
            if not (np.array_equal(p.y, first.y) and np.array_equal(p.samples, first.samples)):
                raise DataValidationError(
                    f"paired comparison: {family}'s test cells differ from {reference}'s; "
                    "pairing needs the same cells"
                )
        families[family] = _family_entry(
            pooled,
            reference_pooled,
            (_scores(pooled, weights), reference_scores),
            level=level,
            testable=testable,
        )
    return {
        "reference": reference,
        "unit": "sample",
        "resamples": resamples,
        "seed": seed,
        "level": level,
        "samples": names,
        "samples_per_class": per_class,
        "seeds": seeds,
        "folds": folds,
        "families": families,
    }
