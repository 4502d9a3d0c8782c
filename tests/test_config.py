"""params.yaml loads into typed objects; every mistake names its key."""

from pathlib import Path

import pytest

from oncopersistnet.config import Params, load_params, params_from_dict
from oncopersistnet.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_params_yaml_loads_and_matches_the_defaults():
    assert load_params(ROOT / "params.yaml") == Params()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"simulate": {"n_cell": 10}}, "simulate: unknown key 'n_cell'"),
        ({"trian": {}}, "unknown key 'trian'"),
        ({"simulate": {"n_cells": "many"}}, "simulate.n_cells: expected an integer"),
        ({"train": {"dropout": 1.5}}, "train.dropout: must be between 0 and 1"),
        ({"train": {"batch_size": 0}}, "train.batch_size: must be positive"),
        ({"train": {"seed": -1}}, "train.seed: must be zero or positive"),
        ({"train": {"learning_rate": 0}}, "train.learning_rate: must be positive"),
        ({"train": {"conv_channels": [8, 0]}}, r"train.conv_channels\[1\]: must be positive"),
        ({"compare": {"logistic_c": 0}}, "compare.logistic_c: must be positive"),
        (
            {"compare": {"models": ["cnn_lstm", "random_forest"]}},
            "compare.models: unknown model 'random_forest'",
        ),
        ({"compare": {"cv_folds": 1}}, "compare.cv_folds: 0 uses"),
        ({"train": {"calibration": "isotonic"}}, "train.calibration: must be platt"),
        (
            {"train": {"architecture": "transformer"}},
            "train.architecture: must be cnn_lstm, cnn_lstm_attention or mlp",
        ),
        ({"predict": {"uncertain_band": [0.7, 0.3]}}, r"predict.uncertain_band: give \[low, high\]"),
        (
            {"predict": {"uncertain_band": [0.2, 1.3]}},
            r"predict.uncertain_band\[1\]: must be between 0 and 1",
        ),
        ({"preprocess": {"target_sum": -5}}, "preprocess.target_sum: must be positive"),
        ({"train": {"bidirectional": "yes"}}, "train.bidirectional: expected true or false"),
        ({"split": {"val_fraction": 0.5, "test_fraction": 0.5}}, "val_fraction + test_fraction"),
        (
            {"data": {"persister_values": ["a"], "non_persister_values": ["a"]}},
            "both persister and non-persister",
        ),
    ],
)
def test_bad_params_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=message if "\\" in message else message.replace("+", r"\+")):
        params_from_dict(raw)


def test_ints_are_accepted_where_floats_are_expected():
    assert params_from_dict({"preprocess": {"target_sum": 10000}}).preprocess.target_sum == 10000.0


def test_every_network_the_code_builds_is_an_accepted_architecture_and_family():
    from oncopersistnet.config import ALL_MODEL_FAMILIES, NETWORK_ARCHITECTURES
    from oncopersistnet.model.network import ARCHITECTURES, NETWORK_CLASSES

    assert set(NETWORK_ARCHITECTURES) == set(ARCHITECTURES) == set(NETWORK_CLASSES)
    for architecture in ARCHITECTURES:
        assert params_from_dict({"train": {"architecture": architecture}}).train.architecture == architecture
        assert architecture in ALL_MODEL_FAMILIES
    assert params_from_dict({"compare": {"models": ["cnn_lstm_attention"]}}).compare.models == [
        "cnn_lstm_attention"
    ]


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="no such parameters file"):
        load_params(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)


def test_hash_changes_with_values_and_only_for_chosen_sections():
    base = Params()
    changed = params_from_dict({"train": {"learning_rate": 0.01}})
    assert base.hash() != changed.hash()
    assert base.hash(["simulate"]) == changed.hash(["simulate"])
    assert base.flat(["train"])["train.learning_rate"] == 0.001
