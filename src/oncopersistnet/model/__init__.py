"""The persister networks (hybrid CNN-LSTM, its attention variant, same-size MLP), training and
calibration."""

from oncopersistnet.model.calibration import apply_calibration, fit_calibration
from oncopersistnet.model.network import (
    CnnLstmAttentionClassifier,
    CnnLstmClassifier,
    MlpClassifier,
    PersisterNetwork,
)
from oncopersistnet.model.training import (
    TrainingResult,
    build_network,
    load_checkpoint,
    predict_logits,
    predict_proba,
    save_checkpoint,
    train_model,
)

__all__ = [
    "CnnLstmAttentionClassifier",
    "CnnLstmClassifier",
    "MlpClassifier",
    "PersisterNetwork",
    "TrainingResult",
    "apply_calibration",
    "build_network",
    "fit_calibration",
    "load_checkpoint",
    "predict_logits",
    "predict_proba",
    "save_checkpoint",
    "train_model",
]
