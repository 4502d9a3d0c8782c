"""The hybrid Conv1D + LSTM + dense persister classifier and its training loop."""

from oncopersistnet.model.network import CnnLstmClassifier
from oncopersistnet.model.training import TrainingResult, load_checkpoint, predict_proba, save_checkpoint, train_model

__all__ = ["CnnLstmClassifier", "TrainingResult", "load_checkpoint", "predict_proba", "save_checkpoint", "train_model"]
