"""Metrics and curve tables."""

import math

import numpy as np
import pytest

from oncopersistnet.evaluation import METRIC_NAMES, classification_metrics, curve_tables
from oncopersistnet.evaluation.metrics import confusion_counts


def test_known_values():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.9])
    m = classification_metrics(y, p, threshold=0.5)
    assert set(m) == set(METRIC_NAMES)
    assert m["accuracy"] == 0.5 and m["precision"] == 0.5 and m["recall"] == 0.5
    assert m["roc_auc"] == 0.75
    assert confusion_counts(y, p).tolist() == [[1, 1], [1, 1]]


def test_single_class_gives_nan_auc_not_a_crash():
    m = classification_metrics(np.ones(3), np.array([0.2, 0.8, 0.9]))
    assert math.isnan(m["roc_auc"]) and m["recall"] == 2 / 3


def test_curve_tables_are_tagged_and_labelled():
    tables = curve_tables(np.array([0, 1, 1]), np.array([0.2, 0.7, 0.4]), "m")
    assert set(tables) == {"roc", "pr", "confusion"}
    assert (tables["roc"]["model"] == "m").all()
    assert tables["confusion"]["actual"].tolist() == ["non-persister", "persister", "persister"]
    assert tables["confusion"]["predicted"].tolist() == ["non-persister", "persister", "non-persister"]


def test_brier_ece_and_reliability_table():
    from oncopersistnet.evaluation.metrics import expected_calibration_error, reliability_table

    y = np.array([0, 0, 1, 1, 1, 0, 1, 0])
    perfect = y.astype(float)
    metrics = classification_metrics(y, perfect)
    assert metrics["brier"] == 0.0 and metrics["ece"] == 0.0 and metrics["mcc"] == 1.0
    constant = np.full(8, 0.9)  # says 90 % persister, half are
    assert expected_calibration_error(y, constant) == pytest.approx(0.4)
    table = reliability_table(y, constant)
    assert len(table) == 1 and table["cells"].iloc[0] == 8 and table["fraction_persister"].iloc[0] == 0.5


def test_per_sample_table_calls_whole_cultures():
    from oncopersistnet.evaluation.metrics import per_sample_table

    samples = np.array(["a"] * 4 + ["b"] * 4)
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    probability = np.array([0.1, 0.2, 0.7, 0.1, 0.9, 0.4, 0.8, 0.6])
    table = per_sample_table(y, probability, samples).set_index("sample")
    assert (
        table.loc["a", "sample_label"] == "non-persister" and table.loc["a", "sample_call"] == "non-persister"
    )
    assert table.loc["b", "called_persister_fraction"] == 0.75 and bool(table.loc["b", "sample_correct"])
    assert table.loc["a", "cell_accuracy"] == 0.75
