"""Probability calibration of a trained network, fitted on the validation split.

With ``train.class_weight: balanced`` the network is trained with a class-balancing
``pos_weight``, so its raw probabilities over-call the minority class by design: fine for ranking, wrong as
"the chance this cell is a persister". Platt scaling (``sigmoid(a * logit + b)``)
fixes both the spread and that shift; temperature scaling (``b = 0``) fixes only
the spread. Both are fitted on cells the network did not train on (validation
split) and stored in the network's ``calibration`` buffer, so the exported ONNX
graph applies them too.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from oncopersistnet.choices import CALIBRATION_METHODS


def _nll(params: np.ndarray, logits: np.ndarray, y: np.ndarray) -> float:
    z = params[0] * logits + params[1]
    # log(1 + exp(z)) - y z, computed stably
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def fit_calibration(logits: np.ndarray, y: np.ndarray, method: str = "platt") -> tuple[float, float]:
    """``(scale, shift)`` minimising the log-loss of ``sigmoid(scale * logit + shift)`` on ``y``.

    ``none`` (or a split with one class, where nothing can be fitted) returns the identity.
    """
    if method not in CALIBRATION_METHODS:
        raise ValueError(
            f"unknown calibration method {method!r}; choose one of {', '.join(CALIBRATION_METHODS)}"
        )
    logits = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if method == "none" or len(np.unique(y)) < 2:
        return 1.0, 0.0
    if method == "temperature":
        result = minimize(
            lambda s: _nll(np.array([s[0], 0.0]), logits, y),
            x0=[1.0],
            method="L-BFGS-B",
            bounds=[(1e-3, 1e3)],
        )
        return float(result.x[0]), 0.0
    result = minimize(
        _nll, x0=[1.0, 0.0], args=(logits, y), method="L-BFGS-B", bounds=[(1e-3, 1e3), (-50.0, 50.0)]
    )
    return float(result.x[0]), float(result.x[1])


def apply_calibration(logits: np.ndarray, scale: float, shift: float) -> np.ndarray:
    """Calibrated probabilities for raw logits."""
    return 1.0 / (1.0 + np.exp(-(np.asarray(logits, dtype=np.float64) * scale + shift)))
