"""Metrics and curve tables."""

import math

import numpy as np

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
