"""params.yaml loads into typed objects; every mistake names its key."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from oncopersistnet.config import (
    LabelledDataConfig,
    LabelMapping,
    Params,
    load_params,
    params_from_dict,
    params_with,
    shipped_params,
)
from oncopersistnet.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = load_params(ROOT / "params.yaml")
RAW = yaml.safe_load((ROOT / "params.yaml").read_text())


def test_shipped_params_yaml_loads_and_is_where_the_defaults_come_from():
    assert shipped_params() == SHIPPED
    for section in dataclasses.fields(Params):  # no dataclass carries a second copy of a value
        for key in dataclasses.fields(getattr(SHIPPED, section.name)):
            assert key.default is dataclasses.MISSING and key.default_factory is dataclasses.MISSING


@pytest.mark.parametrize("section", sorted(RAW))
def test_a_params_file_that_lacks_a_key_names_it(section):
    for key in RAW[section]:
        raw = yaml.safe_load((ROOT / "params.yaml").read_text())
        del raw[section][key]
        with pytest.raises(ConfigError, match=f"{section}: missing key '{key}'"):
            params_from_dict(raw)
    raw = dict(RAW)
    del raw[section]
    with pytest.raises(ConfigError, match=f"params.yaml: missing key '{section}'"):
        params_from_dict(raw)


def test_data_transfer_and_cross_study_entries_share_one_labelled_dataset_type():
    assert isinstance(SHIPPED.data, LabelledDataConfig)
    assert isinstance(SHIPPED.transfer, LabelledDataConfig)
    assert all(isinstance(entry, LabelMapping) for entry in SHIPPED.cross_study.datasets)
    # An entry's label mapping defaults to the data section's; what it gives overrides it.
    study_a, _, gbm = SHIPPED.cross_study.datasets
    mapping = [f.name for f in dataclasses.fields(LabelMapping)]
    assert [getattr(study_a, k) for k in mapping] == [getattr(SHIPPED.data, k) for k in mapping]
    assert (gbm.sample_key, gbm.persister_values, gbm.label_key) == ("patient", ["drug_treated"], "label")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"]["label_key"] = "condition"
    changed = params_from_dict(raw)
    assert [d.label_key for d in changed.cross_study.datasets] == ["condition"] * 3


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
        ({"predict": {"coverage": 1.0}}, r"predict.coverage: must be strictly between 0 and 1"),
        ({"export": {"ood_quantile": 0.0}}, r"export.ood_quantile: must be strictly between 0 and 1"),
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
        params_with(SHIPPED, raw)


def test_ints_are_accepted_where_floats_are_expected():
    assert params_with(SHIPPED, {"preprocess": {"target_sum": 10000}}).preprocess.target_sum == 10000.0


def test_every_network_the_code_builds_is_an_accepted_architecture_and_family():
    from oncopersistnet.choices import ALL_MODEL_FAMILIES, NETWORK_ARCHITECTURES
    from oncopersistnet.model.network import ARCHITECTURES, NETWORK_CLASSES

    assert set(NETWORK_ARCHITECTURES) == set(ARCHITECTURES) == set(NETWORK_CLASSES)
    for architecture in ARCHITECTURES:
        assert (
            params_with(SHIPPED, {"train": {"architecture": architecture}}).train.architecture == architecture
        )
        assert architecture in ALL_MODEL_FAMILIES
    assert params_with(SHIPPED, {"compare": {"models": ["cnn_lstm_attention"]}}).compare.models == [
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
    base = SHIPPED
    changed = params_with(SHIPPED, {"train": {"learning_rate": 0.01}})
    assert base.hash() != changed.hash()
    assert base.hash(["simulate"]) == changed.hash(["simulate"])
    assert base.flat(["train"])["train.learning_rate"] == 0.001
