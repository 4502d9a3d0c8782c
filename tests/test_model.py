"""The CNN-LSTM and its attention variant: shapes, determinism, checkpoints."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import FAST_TRAIN

from oncopersistnet.errors import ModelError
from oncopersistnet.model import (
    CnnLstmAttentionClassifier,
    CnnLstmClassifier,
    build_network,
    load_checkpoint,
    predict_proba,
    save_checkpoint,
    train_model,
)


@pytest.mark.parametrize("n_features", [5, 16, 50])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_forward_gives_one_logit_per_cell(n_features, bidirectional):
    model = CnnLstmClassifier(
        n_features, conv_channels=[4, 8], lstm_hidden=6, bidirectional=bidirectional
    ).eval()
    assert model(torch.zeros(3, n_features)).shape == (3,)


def test_same_seed_same_model_same_predictions(fitted, trained):
    _, features, labels = fitted
    again = train_model(
        (features["train"], labels["train"]), (features["val"], labels["val"]), FAST_TRAIN, progress=False
    )
    assert again.history == trained.history
    assert np.array_equal(
        predict_proba(again.model, features["test"]), predict_proba(trained.model, features["test"])
    )


def test_training_learns_something(fitted, trained):
    _, features, labels = fitted
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(labels["test"], predict_proba(trained.model, features["test"])) > 0.7
    assert 1 <= trained.best_epoch <= len(trained.history) <= FAST_TRAIN.max_epochs


def test_one_class_training_data_is_refused(fitted):
    _, features, labels = fitted
    with pytest.raises(ModelError, match="both persisters and non-persisters"):
        train_model(
            (features["train"], np.zeros_like(labels["train"])),
            (features["val"], labels["val"]),
            FAST_TRAIN,
            progress=False,
        )


def test_checkpoint_roundtrip(fitted, trained, tmp_path):
    _, features, _ = fitted
    save_checkpoint(trained.model, tmp_path / "m.pt")
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert np.array_equal(
        predict_proba(loaded, features["test"]), predict_proba(trained.model, features["test"])
    )
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
    assert np.array_equal(
        load_checkpoint(tmp_path / "c.pt").calibration.numpy(), trained.model.calibration.numpy()
    )


def test_mlp_architecture_trains_and_reloads(fitted, tmp_path):
    from dataclasses import replace as _replace

    from oncopersistnet.model import MlpClassifier

    _, features, labels = fitted
    result = train_model(
        (features["train"], labels["train"]),
        (features["val"], labels["val"]),
        _replace(FAST_TRAIN, architecture="mlp"),
        progress=False,
    )
    assert isinstance(result.model, MlpClassifier)
    save_checkpoint(result.model, tmp_path / "mlp.pt")
    loaded = load_checkpoint(tmp_path / "mlp.pt")
    assert isinstance(loaded, MlpClassifier)
    assert np.array_equal(
        predict_proba(loaded, features["test"]), predict_proba(result.model, features["test"])
    )


# ------------------------------------------------------------ attention variant
ATTENTION_TRAIN = replace(FAST_TRAIN, architecture="cnn_lstm_attention")


@pytest.fixture(scope="module")
def attention_trained(fitted):
    _, features, labels = fitted
    return train_model(
        (features["train"], labels["train"]),
        (features["val"], labels["val"]),
        ATTENTION_TRAIN,
        progress=False,
    )


@pytest.mark.parametrize(("n_features", "length"), [(5, 5), (16, 8), (50, 25), (51, 25)])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_attention_weights_are_a_distribution_over_the_pooled_positions(n_features, length, bidirectional):
    torch.manual_seed(0)
    model = CnnLstmAttentionClassifier(
        n_features, conv_channels=[4, 8], lstm_hidden=6, bidirectional=bidirectional
    ).eval()
    features = torch.randn(3, n_features)
    alpha = model.attention_weights(features)
    assert alpha.shape == (3, length) and len(model.components_per_position()) == length
    assert bool((alpha >= 0).all()) and torch.allclose(alpha.sum(dim=1), torch.ones(3), atol=1e-6)
    assert model(features).shape == (3,)
    pooled = n_features >= 8  # MaxPool halves the sequence: position t covers components 2t and 2t+1
    positions = model.components_per_position()
    assert positions[0] == ((0, 1) if pooled else (0,))
    assert positions[-1][-1] == (2 * length - 1 if pooled else n_features - 1)


def test_attention_head_reads_the_weighted_mean_of_all_lstm_outputs_not_the_final_state():
    torch.manual_seed(0)
    model = CnnLstmAttentionClassifier(16, conv_channels=[4, 8], lstm_hidden=6).eval()
    features = torch.randn(5, 16)
    with torch.no_grad():
        model.attention[2].weight.zero_()  # equal scores: alpha must be uniform, the summary the plain mean
        outputs, _ = model._encode(features)
        assert torch.allclose(model.attention_weights(features), torch.full((5, 8), 1 / 8))
        assert torch.allclose(model(features), model.head(outputs.mean(dim=1)).squeeze(1), atol=1e-6)
        # the same shared weights read through the final state give other logits
        final_state = CnnLstmClassifier(16, conv_channels=[4, 8], lstm_hidden=6).eval()
        final_state.load_state_dict(
            {k: v for k, v in model.state_dict().items() if not k.startswith("attention.")}
        )
        assert not torch.allclose(final_state(features), model(features), atol=1e-4)


def test_attention_variant_shares_the_cnn_lstm_layers_and_their_initial_weights():
    torch.manual_seed(7)
    plain = build_network(FAST_TRAIN, 16)
    torch.manual_seed(7)
    attention = build_network(ATTENTION_TRAIN, 16)
    assert type(plain) is CnnLstmClassifier and type(attention) is CnnLstmAttentionClassifier
    shared, extra = plain.state_dict(), attention.state_dict()
    assert set(extra) - set(shared) == {"attention.0.weight", "attention.0.bias", "attention.2.weight"}
    assert all(torch.equal(shared[k], extra[k]) for k in shared)
    summary, units = 2 * FAST_TRAIN.lstm_hidden, attention.config["attention_units"]
    assert attention.n_parameters - plain.n_parameters == summary * units + units + units


def test_attention_variant_trains_beats_chance_and_learns_non_uniform_weights(fitted, attention_trained):
    from sklearn.metrics import roc_auc_score

    _, features, labels = fitted
    model = attention_trained.model
    assert isinstance(model, CnnLstmAttentionClassifier)
    assert roc_auc_score(labels["test"], predict_proba(model, features["test"])) > 0.7
    assert tuple(float(v) for v in model.calibration) != (1.0, 0.0)
    with torch.no_grad():
        alpha = model.attention_weights(torch.from_numpy(features["test"]))
    assert alpha.shape == (len(labels["test"]), len(model.components_per_position()))
    assert float((alpha - 1 / alpha.shape[1]).abs().max()) > 1e-3  # training moved it away from uniform


def test_attention_checkpoint_roundtrip_rebuilds_the_same_network(fitted, attention_trained, tmp_path):
    _, features, _ = fitted
    save_checkpoint(attention_trained.model, tmp_path / "attention.pt")
    loaded = load_checkpoint(tmp_path / "attention.pt")
    assert isinstance(loaded, CnnLstmAttentionClassifier) and loaded.config == attention_trained.model.config
    assert np.array_equal(
        predict_proba(loaded, features["test"]), predict_proba(attention_trained.model, features["test"])
    )
    x = torch.from_numpy(features["test"])
    with torch.no_grad():
        assert torch.equal(loaded.attention_weights(x), attention_trained.model.eval().attention_weights(x))
    # a non-default attention width is part of the config, so the checkpoint rebuilds it
    narrow = CnnLstmAttentionClassifier(
        16, conv_channels=[4], lstm_hidden=4, bidirectional=False, attention_units=5
    ).eval()
    save_checkpoint(narrow, tmp_path / "narrow.pt")
    again = load_checkpoint(tmp_path / "narrow.pt")
    assert again.config["attention_units"] == 5 and again.attention[0].out_features == 5
    assert torch.equal(again(x), narrow(x))


def test_checkpoint_bytes_do_not_depend_on_the_file_name(tmp_path, trained):
    """torch.save to a path names its archive after the (random) temporary file; dvc.lock hashes the bytes."""
    from oncopersistnet.model import load_checkpoint, save_checkpoint

    first, second = tmp_path / "model.pt", tmp_path / "other" / "renamed.pt"
    save_checkpoint(trained.model, first, extra={"best_epoch": 3})
    save_checkpoint(trained.model, second, extra={"best_epoch": 3})
    assert first.read_bytes() == second.read_bytes()
    reloaded = load_checkpoint(second)
    for name, tensor in trained.model.state_dict().items():
        assert reloaded.state_dict()[name].equal(tensor), name
