"""What the comparison keeps of one fitted model: the record both the summaries and the paired
bootstrap read (its own module, so that :mod:`~oncopersistnet.evaluation.paired` and
:mod:`~oncopersistnet.evaluation.comparison` share it without importing each other)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class FitResult:
    """One fitted model on one fold: its test metrics, test probabilities and what it learned.

    ``probability`` is after the common post-hoc step (:mod:`~oncopersistnet.evaluation.posthoc`),
    whose calibration and validation-chosen ``threshold`` are in ``posthoc``; ``metrics`` are
    taken at that threshold. ``validation``: threshold-free figures on the validation cells (what
    model selection may look at). ``genes_read``: names of the genes the model's input is made of.
    ``conformal``: :func:`~oncopersistnet.inference.conformal.held_out_report` of sets
    calibrated on the fit's validation cells, on its test cells (empty without a coverage).
    """

    family: str
    fold: str
    seed: int
    metrics: dict[str, float]
    probability: np.ndarray
    y: np.ndarray
    samples: np.ndarray
    seconds: float
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    conformal: dict[str, Any] = field(default_factory=dict)
    posthoc: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, float] = field(default_factory=dict)
    view: str = ""
    genes_read: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))

    @property
    def threshold(self) -> float:
        """The cut the metrics were taken at, chosen on the fit's validation cells."""
        return float(self.posthoc["threshold"])
