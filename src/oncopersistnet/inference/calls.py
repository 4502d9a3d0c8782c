"""What every door (file CLI, HTTP, Python) answers for a cell: one record, one set of field names.

Per cell: the calibrated probability, the label, the conformal prediction set, whether the
cell is out of distribution and its distance, and why it got no call. The label comes from the
conformal set at the chosen coverage (:mod:`oncopersistnet.inference.conformal`): one class ->
that class; both classes or none -> ``uncertain`` (the set column says which). A model exported
before conformal scores existed falls back to its threshold, with no ``uncertain`` class and an
empty set column. A cell below the signal floors gets ``no_call``: no probability, no set, no
distance, not flagged (there is nothing to compare).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from oncopersistnet.data.labels import NON_PERSISTER, PERSISTER
from oncopersistnet.inference.conformal import EMPTY_SET, ConformalCalibration, check_coverage, set_names
from oncopersistnet.inference.model import OnnxPersisterModel
from oncopersistnet.inference.signal import NO_CALL

logger = logging.getLogger(__name__)

UNCERTAIN = "uncertain"
#: Every label a cell can get, in the order plots and categoricals list them.
CALL_LABELS = (PERSISTER, NON_PERSISTER, UNCERTAIN, NO_CALL)


@dataclass(frozen=True)
class Calls:
    """One block of cells' answers; field names are the output columns (after ``cell_id``)."""

    persister_probability: np.ndarray  # float32, NaN = no call
    predicted_label: np.ndarray  # CALL_LABELS
    prediction_set: np.ndarray  # persister | non-persister | non-persister|persister | empty | "" (none)
    out_of_distribution: np.ndarray  # bool: distance above the model's threshold (False for a no-call cell)
    ood_distance: np.ndarray  # float32, ~1 for a typical training cell; NaN = no call or no distance
    no_call_reason: np.ndarray  # "" = called

    def __len__(self) -> int:
        return len(self.predicted_label)

    def columns(self) -> dict[str, np.ndarray]:
        """Field name -> values, in output order; ``out_of_distribution`` is None (unknown, not
        False) for a cell without a call, as its probability and distance are NaN."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        flag = self.out_of_distribution.astype(object)
        flag[self.predicted_label == NO_CALL] = None
        out["out_of_distribution"] = flag
        return out

    def count(self, label: str) -> int:
        return int((self.predicted_label == label).sum())

    @classmethod
    def concat(cls, parts: Sequence[Calls]) -> Calls:
        """The parts one after another (an empty record for no parts)."""
        if not parts:
            return empty_calls()
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})


FIELDS = tuple(f.name for f in fields(Calls))


def empty_calls() -> Calls:
    """A record of zero cells."""
    text = np.zeros(0, dtype=str)
    return Calls(
        persister_probability=np.zeros(0, dtype=np.float32),
        predicted_label=text,
        prediction_set=text,
        out_of_distribution=np.zeros(0, dtype=bool),
        ood_distance=np.zeros(0, dtype=np.float32),
        no_call_reason=text,
    )


@dataclass(frozen=True, kw_only=True)
class DecisionRule:
    """How probabilities become labels and flags: the model's conformal scores at ``coverage`` (or its
    ``threshold`` when it has none) and its out-of-distribution threshold (None: never flagged)."""

    conformal: ConformalCalibration | None
    coverage: float
    threshold: float
    ood_threshold: float | None

    def labels(self, probability: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(label, set name) per cell."""
        if self.conformal is None:
            labels = np.where(probability >= self.threshold, PERSISTER, NON_PERSISTER).astype(str)
            return labels, np.full(len(labels), "", dtype=str)
        names = set_names(self.conformal.sets(probability, self.coverage))
        labels = np.where(np.isin(names, (PERSISTER, NON_PERSISTER)), names, UNCERTAIN).astype(str)
        return labels, names

    def cutoffs(self) -> dict[str, float]:
        """Where the labels turn, in probability: a cell's set holds persister when
        ``p >= persister_in_set_from`` and non-persister when ``p <= non_persister_in_set_up_to``
        (one class: that label; both or none: ``uncertain``). These need not be the export threshold
        the test metrics are computed at. Without conformal scores: persister from the threshold."""
        if self.conformal is None:
            return {"persister_from": self.threshold}
        q_non, q_pers = self.conformal.quantiles(self.coverage)
        return {
            "persister_in_set_from": float(max(1.0 - q_pers, 0.0)),
            "non_persister_in_set_up_to": float(min(q_non, 1.0)),
        }

    def describe(self) -> str:
        """One phrase for logs and summaries."""
        if self.conformal is None:
            return f"threshold {self.threshold:g} (the model carries no conformal scores: no uncertain class)"
        return f"conformal sets at {self.coverage:.0%} coverage per class"


def make_calls(
    probability: np.ndarray, distance: np.ndarray, reasons: np.ndarray, *, rule: DecisionRule
) -> Calls:
    """Label and flag every cell; a cell with a no-call reason keeps none of the answers."""
    labels, names = rule.labels(probability)
    flagged = (
        np.zeros(len(labels), dtype=bool)
        if rule.ood_threshold is None
        else np.nan_to_num(distance, nan=-np.inf) > rule.ood_threshold
    )
    withheld = np.asarray(reasons) != ""
    return Calls(
        persister_probability=np.where(withheld, np.nan, probability).astype(np.float32),
        predicted_label=np.where(withheld, NO_CALL, labels).astype(str),
        prediction_set=np.where(withheld, "", names).astype(str),
        out_of_distribution=flagged & ~withheld,
        ood_distance=np.where(withheld, np.nan, distance).astype(np.float32),
        no_call_reason=np.asarray(reasons).astype(str),
    )


def rule_for(model: OnnxPersisterModel, *, coverage: float, threshold: float | None = None) -> DecisionRule:
    """``model``'s decision rule at ``coverage`` (``threshold``: the fallback for a model without
    conformal scores; default its own). Says so when a given threshold cannot apply (a model too
    old for conformal scores or the OOD output says so once, when it is loaded)."""
    if model.conformal is not None and threshold is not None:
        logger.warning(
            "%s labels cells by its conformal sets: the threshold %g given is not used (choose the coverage)",
            model.source,
            threshold,
        )
    return DecisionRule(
        conformal=model.conformal,
        coverage=check_coverage(coverage),
        threshold=model.threshold if threshold is None else threshold,
        ood_threshold=model.ood_threshold,
    )


@dataclass
class CallTally:
    """Running totals over blocks of calls: what every summary (CLI, HTTP, ``uns``) reports."""

    cells: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CALL_LABELS, 0))
    flagged: int = 0
    called: int = 0
    empty_sets: int = 0

    def add(self, calls: Calls) -> None:
        self.cells += len(calls)
        for label in self.counts:
            self.counts[label] += calls.count(label)
        self.flagged += int(calls.out_of_distribution.sum())
        self.called += int((calls.predicted_label != NO_CALL).sum())
        self.empty_sets += int((calls.prediction_set == EMPTY_SET).sum())

    def summary(self, rule: DecisionRule, *, ood_warn_fraction: float) -> dict[str, Any]:
        """Counts and fractions of each label, the flagged share and the rule that made them."""
        n = max(self.cells, 1)
        flagged_fraction = self.flagged / max(self.called, 1)  # no-call cells are neither in nor out
        return {
            "cells": self.cells,
            "persisters": self.counts[PERSISTER],
            "persister_fraction": self.counts[PERSISTER] / n,
            "uncertain": self.counts[UNCERTAIN],
            "uncertain_fraction": self.counts[UNCERTAIN] / n,
            "empty_sets": self.empty_sets,
            "no_calls": self.counts[NO_CALL],
            "no_call_fraction": self.counts[NO_CALL] / n,
            "out_of_distribution": self.flagged,
            "out_of_distribution_fraction_of_called": flagged_fraction,
            "ood_threshold": rule.ood_threshold,
            "ood_warning": ood_warning(flagged_fraction, ood_warn_fraction) if rule.ood_threshold else None,
            "coverage": rule.coverage if rule.conformal is not None else None,
            "decision_rule": rule.describe(),
            "label_cutoffs": rule.cutoffs(),
        }


def ood_warning(fraction: float, warn_fraction: float) -> str | None:
    """The warning a summary carries when too many cells are unlike the training cells (None: fine)."""
    if fraction <= warn_fraction:
        return None
    return (
        f"{fraction:.1%} of cells are out of distribution (more than predict.ood_warn_fraction "
        f"{warn_fraction:.0%}): they are unlike the cells the model was trained on (another technology, "
        "tissue or species?); read their calls with care"
    )
