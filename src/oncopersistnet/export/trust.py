"""What a model needs to say when its call means little: the OOD distance and the conformal scores.

Both are fitted where the network's calibration is, on the cells the model was built from:
the distance's variances on training cells, its threshold and the conformal scores on
validation cells. Never a test cell: the test samples then measure how well both hold.
The export stage and ``transfer`` call :func:`fit_trust`, so a pipeline model and an adapted
one carry the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from oncopersistnet.inference.conformal import ConformalCalibration
from oncopersistnet.model import PersisterNetwork, predict_proba
from oncopersistnet.preprocessing import CellPreprocessor
from oncopersistnet.preprocessing.distance import TrainingDistance


@dataclass(frozen=True)
class TrustCalibration:
    """The fitted out-of-distribution distance and the validation cells' conformal scores."""

    distance: TrainingDistance
    conformal: ConformalCalibration

    def metadata(self) -> dict[str, object]:
        """The ONNX ``metadata_props`` entries (``ood``, ``conformal_scores``)."""
        return {"ood": self.distance.metadata(), "conformal_scores": self.conformal.to_metadata()}


def fit_trust(
    preprocessor: CellPreprocessor,
    network: PersisterNetwork,
    *,
    train_counts: sparse.spmatrix | np.ndarray,
    val_counts: sparse.spmatrix | np.ndarray,
    val_y: np.ndarray,
    ood_quantile: float,
) -> TrustCalibration:
    """Fit both on raw counts over the preprocessor's genes (``val_y``: binary labels)."""
    distance = TrainingDistance(quantile=ood_quantile).fit(preprocessor, train_counts, val_counts)
    probability = predict_proba(network, preprocessor.transform(val_counts))
    return TrustCalibration(distance=distance, conformal=ConformalCalibration.fit(probability, val_y))
