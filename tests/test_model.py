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


def test_platt_calibration_recovers_a_known_mapping():
    from oncopersistnet.model import apply_calibration, fit_calibration

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, 20000)
    y = rng.random(20000) < apply_calibration(logits, 0.5, -1.0)
    scale, shift = fit_calibration(logits, y, "platt")
    assert scale == pytest.approx(0.5, abs=0.05) and shift == pytest.approx(-1.0, abs=0.1)
    temperature_scale, zero = fit_calibration(logits, y, "temperature")
    assert zero == 0.0 and 0 < temperature_scale < 1
    assert fit_calibration(logits, y, "none") == (1.0, 0.0)
    assert fit_calibration(logits, np.zeros(20000), "platt") == (1.0, 0.0)  # one class: nothing to fit


def test_trained_network_is_calibrated_on_validation_and_checkpoint_keeps_it(trained, fitted, tmp_path):
    from oncopersistnet.model import apply_calibration, predict_logits

    _, features, _ = fitted
    scale, shift = (float(v) for v in trained.model.calibration)
    assert (scale, shift) != (1.0, 0.0)
    expected = apply_calibration(predict_logits(trained.model, features["test"]), scale, shift)
    assert np.allclose(predict_proba(trained.model, features["test"]), expected, atol=1e-6)
    save_checkpoint(trained.model, tmp_path / "c.pt")
    assert np.array_equal(load_checkpoint(tmp_path / "c.pt").calibration.numpy(), trained.model.calibration.numpy())


def test_mlp_architecture_trains_and_reloads(fitted, tmp_path):
    from dataclasses import replace as _replace

    from oncopersistnet.model import MlpClassifier

    _, features, labels = fitted
    result = train_model(features["train"], labels["train"], features["val"], labels["val"], _replace(FAST_TRAIN, architecture="mlp"), progress=False)
    assert isinstance(result.model, MlpClassifier)
    save_checkpoint(result.model, tmp_path / "mlp.pt")
    loaded = load_checkpoint(tmp_path / "mlp.pt")
    assert isinstance(loaded, MlpClassifier)
    assert np.array_equal(predict_proba(loaded, features["test"]), predict_proba(result.model, features["test"]))
