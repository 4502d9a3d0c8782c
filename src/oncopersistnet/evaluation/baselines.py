"""Simple baselines trained on exactly the network's features and split.

A deep model only earns its place if it beats these on the same cells.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression


def fit_logistic_baseline(X_train: np.ndarray, y_train: np.ndarray, c: float = 1.0, seed: int = 0) -> LogisticRegression:
    """Class-balanced L2 logistic regression on the PCA features."""
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed)
    return model.fit(X_train, y_train)
