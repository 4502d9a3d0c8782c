"""The CNN-LSTM: shapes, determinism, checkpoints."""

import numpy as np
import pytest
import torch

from oncopersistnet.errors import ModelError
from oncopersistnet.model import CnnLstmClassifier, load_checkpoint, predict_proba, save_checkpoint, train_model

from conftest import FAST_TRAIN


@pytest.mark.parametrize("n_features", [5, 16, 50])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_forward_gives_one_logit_per_cell(n_features, bidirectional):
    model = CnnLstmClassifier(n_features, conv_channels=[4, 8], lstm_hidden=6, bidirectional=bidirectional).eval()
    assert model(torch.zeros(3, n_features)).shape == (3,)


def test_same_seed_same_model_same_predictions(fitted, trained):
    _, features, labels = fitted
    again = train_model(features["train"], labels["train"], features["val"], labels["val"], FAST_TRAIN, progress=False)
    assert again.history == trained.history
    assert np.array_equal(predict_proba(again.model, features["test"]), predict_proba(trained.model, features["test"]))


def test_training_learns_something(fitted, trained):
    _, features, labels = fitted
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(labels["test"], predict_proba(trained.model, features["test"])) > 0.7
    assert 1 <= trained.best_epoch <= len(trained.history) <= FAST_TRAIN.max_epochs


def test_one_class_training_data_is_refused(fitted):
    _, features, labels = fitted
    with pytest.raises(ModelError, match="both persisters and non-persisters"):
        train_model(features["train"], np.zeros_like(labels["train"]), features["val"], labels["val"], FAST_TRAIN, progress=False)


def test_checkpoint_roundtrip(fitted, trained, tmp_path):
    _, features, _ = fitted
    save_checkpoint(trained.model, tmp_path / "m.pt")
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert np.array_equal(predict_proba(loaded, features["test"]), predict_proba(trained.model, features["test"]))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a model checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
