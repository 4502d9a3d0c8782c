"""The one post-hoc step every family of the comparison gets: calibrate, then cut, both on validation.

Without it, thresholded metrics compare calibration schemes, not models: a class-balanced
logistic regression over-calls persisters at 0.5, an uncalibrated CellTypist under-calls
them, and their F1 says so rather than how well they rank cells. So each fit's own
persister log-odds on its validation cells (the family's decision score where it has one,
:meth:`~oncopersistnet.evaluation.candidates.Candidate.log_odds`) are (1) Platt-scaled
(:func:`~oncopersistnet.model.calibration.fit_calibration`, the method the deployed network
uses; ``compare.calibration``) and (2) cut at the threshold one rule picks on the calibrated
validation probabilities (``compare.threshold_rule``):

* ``youden``: the cut maximising sensitivity + specificity - 1 (balanced accuracy). It does not
  depend on the validation samples' class mix, which differs from the test samples' (one
  culture per class per fold, of different sizes);
* ``f1``: the cut maximising F1 on the validation cells;
* ``fixed``: ``evaluate.threshold`` (what the deployed model uses).

Test cells never enter either step. Platt scaling is monotone, so ROC-AUC and PR-AUC are the
family's own; Brier, ECE and the thresholded metrics then judge every family after the same step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from oncopersistnet.model.calibration import apply_calibration, fit_calibration

#: Probabilities are clipped this far from 0 and 1 before taking log-odds (an exact 0 or 1 has no
#: finite logit). As small as float64 allows: a wider clip would tie cells the family still ranks
#: (CellTypist's probabilities sit below 1e-12 for most cells, which is why it passes its decision
#: scores instead).
LOGIT_CLIP = float(np.finfo(np.float64).tiny)


def log_odds(probability: np.ndarray) -> np.ndarray:
    """logit(p), with p clipped to [LOGIT_CLIP, 1 - LOGIT_CLIP]."""
    p = np.clip(np.asarray(probability, dtype=np.float64), LOGIT_CLIP, 1.0 - LOGIT_CLIP)
    return np.log(p) - np.log1p(-p)


def choose_threshold(y: np.ndarray, probability: np.ndarray, *, rule: str, fixed: float) -> float:
    """The cut ``rule`` picks on (validation) cells: predicted persister when ``probability >= cut``.

    Ties go to the highest cut (the first of scikit-learn's decreasing thresholds), so the
    choice is deterministic. A split with one class cannot choose; it gets ``fixed``.
    """
    y = np.asarray(y).astype(int)
    probability = np.asarray(probability, dtype=np.float64)
    if rule == "fixed" or len(np.unique(y)) < 2:
        return float(fixed)
    if rule == "youden":
        fpr, tpr, thresholds = roc_curve(y, probability)
        finite = np.isfinite(thresholds)
        return float(thresholds[finite][np.argmax((tpr - fpr)[finite])])
    if rule == "f1":
        precision, recall, thresholds = precision_recall_curve(y, probability)
        precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
        denominator = precision + recall
        f1 = np.divide(
            2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0
        )
        best = np.flatnonzero(f1 == f1.max())
        return float(thresholds[best[-1]])  # thresholds increase here: the last maximum is the highest cut
    raise ValueError(f"unknown threshold rule {rule!r}")


@dataclass(frozen=True)
class PostHoc:
    """Calibration ``sigmoid(scale * logit(p) + shift)`` and the cut on the calibrated probability."""

    method: str
    scale: float
    shift: float
    rule: str
    threshold: float

    @classmethod
    def fit(
        cls, scores: np.ndarray, y: np.ndarray, *, method: str, rule: str, fixed_threshold: float
    ) -> PostHoc:
        """Fit both steps on one fit's validation cells: its log-odds ``scores`` and their labels."""
        scale, shift = fit_calibration(scores, y, method)
        calibrated = apply_calibration(scores, scale, shift)
        threshold = choose_threshold(y, calibrated, rule=rule, fixed=fixed_threshold)
        return cls(method=method, scale=scale, shift=shift, rule=rule, threshold=threshold)

    def probability(self, scores: np.ndarray) -> np.ndarray:
        """The calibrated persister probability of cells the family scored ``scores`` (log-odds)."""
        return apply_calibration(scores, self.scale, self.shift)

    def as_dict(self) -> dict[str, float | str]:
        return {
            "calibration": self.method,
            "scale": self.scale,
            "shift": self.shift,
            "threshold_rule": self.rule,
            "threshold": self.threshold,
        }
