"""Class-conditional split-conformal prediction sets: uncertainty with a stated coverage.

A fixed band around the threshold ("uncertain if 0.35 < p < 0.65") says nothing about how
often the true class is missed. Split conformal prediction does: the nonconformity score of
class ``c`` for a cell is ``1 - p_c`` (``p_persister`` is the calibrated probability,
``p_non-persister = 1 - p``); on the validation cells of each class (the calibration set,
never a test cell) the ``ceil((n_c + 1) * coverage) / n_c`` empirical quantile ``q_c`` of that
class's scores is taken, and a new cell's set holds every class whose score is at most
``q_c``. If validation and new cells are exchangeable, each class is covered with
probability at least ``coverage`` (class-conditional, "Mondrian" conformal: the minority
class gets its own guarantee, not just the average). A set holding both classes is an
``uncertain`` call; an empty set (the cell conforms to neither class) is reported as empty.

The validation scores themselves travel in the ONNX file's metadata, so a user picks the
coverage at prediction time (``predict.coverage``, ``--coverage``) without re-exporting.
Short on purpose: MAPIE fits this, but its fitted objects are pickles that would not travel
inside the one ONNX file; the tests check the guarantee on exchangeable draws instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from oncopersistnet.data.labels import NON_PERSISTER, PERSISTER
from oncopersistnet.errors import InputDataError, ModelError

#: Column order of a prediction-set matrix: ``sets[:, 0]`` non-persister, ``sets[:, 1]`` persister.
SET_CLASSES = (NON_PERSISTER, PERSISTER)
EMPTY_SET = "empty"
BOTH_CLASSES = f"{NON_PERSISTER}|{PERSISTER}"


def check_coverage(coverage: float) -> float:
    """``coverage`` as a float strictly between 0 and 1, or a readable error."""
    if not 0.0 < float(coverage) < 1.0:
        raise InputDataError(f"coverage must lie strictly between 0 and 1, got {coverage}")
    return float(coverage)


def _class_scores(probability: np.ndarray) -> np.ndarray:
    """Nonconformity score of each class (columns as :data:`SET_CLASSES`): ``1 - p_c``."""
    p = np.asarray(probability, dtype=np.float64)
    return np.column_stack([p, 1.0 - p])


@dataclass(frozen=True)
class ConformalCalibration:
    """The sorted validation nonconformity scores of each class; quantiles at any coverage."""

    non_persister: np.ndarray
    persister: np.ndarray

    @classmethod
    def fit(cls, probability: np.ndarray, y: np.ndarray) -> ConformalCalibration:
        """From validation cells: calibrated persister ``probability`` and binary labels ``y``."""
        p, y = np.asarray(probability, dtype=np.float64), np.asarray(y).astype(int)
        if p.shape != y.shape or p.ndim != 1:
            raise InputDataError(f"conformal fit: {p.shape} probabilities for {y.shape} labels")
        scores = _class_scores(p)
        per_class = [np.sort(scores[y == k, k]) for k in (0, 1)]
        for name, values in zip(SET_CLASSES, per_class, strict=True):
            if values.size == 0:
                raise InputDataError(f"conformal fit: no validation cell of class {name!r}")
        return cls(non_persister=per_class[0], persister=per_class[1])

    def quantiles(self, coverage: float) -> np.ndarray:
        """``q_c`` per class (columns as :data:`SET_CLASSES`); ``inf`` when ``n_c`` is too small for
        ``coverage`` (the class is then always in the set: no guarantee can be given otherwise)."""
        coverage = check_coverage(coverage)
        out = []
        for scores in (self.non_persister, self.persister):
            rank = math.ceil((scores.size + 1) * coverage)
            out.append(scores[rank - 1] if rank <= scores.size else np.inf)
        return np.asarray(out, dtype=np.float64)

    def sets(self, probability: np.ndarray, coverage: float) -> np.ndarray:
        """Boolean ``cells x 2`` prediction sets (columns as :data:`SET_CLASSES`)."""
        return _class_scores(probability) <= self.quantiles(coverage)[None, :]

    def to_metadata(self, *, digits: int = 6) -> dict[str, list[float]]:
        """JSON-ready scores (rounded: the quantile moves by at most ``10**-digits``)."""
        return {
            NON_PERSISTER: [round(float(v), digits) for v in self.non_persister],
            PERSISTER: [round(float(v), digits) for v in self.persister],
        }

    @classmethod
    def from_metadata(cls, value: Mapping[str, list[float]]) -> ConformalCalibration:
        """Read :meth:`to_metadata`'s output back (a model's ``conformal_scores``)."""
        try:
            return cls(
                non_persister=np.sort(np.asarray(value[NON_PERSISTER], dtype=np.float64)),
                persister=np.sort(np.asarray(value[PERSISTER], dtype=np.float64)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"conformal scores in the model metadata are malformed ({exc})") from exc


def set_names(sets: np.ndarray) -> np.ndarray:
    """Each set as text: ``persister``, ``non-persister``, ``non-persister|persister`` or ``empty``."""
    sets = np.asarray(sets, dtype=bool)
    names = np.full(len(sets), EMPTY_SET, dtype=object)
    names[sets[:, 0] & ~sets[:, 1]] = NON_PERSISTER
    names[sets[:, 1] & ~sets[:, 0]] = PERSISTER
    names[sets[:, 0] & sets[:, 1]] = BOTH_CLASSES
    return names.astype(str)


def coverage_by_class(sets: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Share of each class's cells whose set holds their true class (NaN for an absent class),
    and how the sets split: singletons, both classes, empty."""
    sets, y = np.asarray(sets, dtype=bool), np.asarray(y).astype(int)
    covered = sets[np.arange(len(y)), y] if len(y) else np.zeros(0, dtype=bool)
    size = sets.sum(axis=1)
    out = {}
    for k, name in enumerate(SET_CLASSES):
        mine = y == k
        out[f"coverage_{name.replace('-', '_')}"] = float(covered[mine].mean()) if mine.any() else math.nan
    n = max(len(y), 1)
    out["coverage_overall"] = float(covered.mean()) if len(y) else math.nan
    out["singleton_fraction"] = float((size == 1).sum() / n)
    out["both_fraction"] = float((size == 2).sum() / n)
    out["empty_fraction"] = float((size == 0).sum() / n)
    return out


#: The figures :func:`coverage_by_class` returns, in a stable order (reports, MLflow, summaries).
COVERAGE_FIGURES = (
    "coverage_non_persister",
    "coverage_persister",
    "coverage_overall",
    "singleton_fraction",
    "both_fraction",
    "empty_fraction",
)


def held_out_report(
    calibration: ConformalCalibration, probability: np.ndarray, y: np.ndarray, *, coverage: float
) -> dict[str, float | int | None]:
    """How ``calibration``'s sets at ``coverage`` do on held-out cells (``probability``, labels ``y``).

    The guarantee is a claim about cells the calibration never saw, so it is checked on them:
    the nominal ``coverage``, each class's quantile (``None`` where the class had too few
    calibration cells for a finite one: it is then always in the set) and calibration size,
    and :func:`coverage_by_class` on ``y``. JSON-ready: no infinities.
    """
    quantiles = calibration.quantiles(coverage)
    out: dict[str, float | int | None] = {"coverage": check_coverage(coverage)}
    for k, (name, scores) in enumerate(
        zip(SET_CLASSES, (calibration.non_persister, calibration.persister), strict=True)
    ):
        key = name.replace("-", "_")
        out[f"quantile_{key}"] = float(quantiles[k]) if np.isfinite(quantiles[k]) else None
        out[f"n_calibration_{key}"] = int(scores.size)
    return out | coverage_by_class(calibration.sets(probability, coverage), y)
