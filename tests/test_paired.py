"""The paired bootstrap over held-out samples: its metrics, its resampling unit, its verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from oncopersistnet.evaluation.paired import (
    paired_comparison,
    sample_weights,
    verdict,
    weighted_average_precision,
    weighted_roc_auc,
)


@dataclass
class _Fit:
    family: str
    fold: str
    seed: int
    probability: np.ndarray
    y: np.ndarray
    samples: np.ndarray
    metrics: dict[str, float] = field(default_factory=dict)


# two folds, each testing one non-persister and one persister sample of 3 cells
SAMPLES = {"fold1": ["n1"] * 3 + ["p1"] * 3, "fold2": ["n2"] * 3 + ["p2"] * 3}
Y = np.array([0, 0, 0, 1, 1, 1])


def _fits(family, probabilities, seeds=(0,)):
    """One fit per fold and seed; ``probabilities[fold]`` the test cells' probabilities."""
    return [
        _Fit(
            family,
            fold,
            seed,
            np.asarray(probabilities[fold], dtype=float),
            Y,
            np.array(SAMPLES[fold]),
            {
                "roc_auc": roc_auc_score(Y, probabilities[fold]),
                "pr_auc": average_precision_score(Y, probabilities[fold]),
            },
        )
        for fold in SAMPLES
        for seed in seeds
    ]


def test_weighted_metrics_equal_scikit_learn_with_sample_weights():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    score = np.round(rng.random(200), 1)  # many ties
    weights = rng.integers(0, 3, size=(5, 200)).astype(float)
    weights[:, :2] = 1.0
    y[:2] = [0, 1]
    auc, ap = weighted_roc_auc(y, score, weights), weighted_average_precision(y, score, weights)
    for row in range(5):
        assert auc[row] == pytest.approx(roc_auc_score(y, score, sample_weight=weights[row]), abs=1e-12)
        assert ap[row] == pytest.approx(
            average_precision_score(y, score, sample_weight=weights[row]), abs=1e-12
        )


def test_resamples_draw_whole_samples_within_each_class():
    samples = np.array(["n1", "n1", "n2", "p1", "p2", "p2", "p2"])
    y = np.array([0, 0, 0, 1, 1, 1, 1])
    weights, names = sample_weights(samples, y, resamples=200, seed=1)
    assert names == ["n1", "n2", "p1", "p2"]
    for row in weights:
        # every cell of a sample carries the same weight: the sample's count in the draw
        assert row[0] == row[1] and row[4] == row[5] == row[6]
        # two samples per class, two draws per class: both classes present in every resample
        assert row[0] + row[2] == 2 and row[3] + row[4] == 2
    assert set(weights[:, 0]) == {0.0, 1.0, 2.0}  # with replacement


def test_identical_predictions_are_level_with_a_zero_interval():
    p = {"fold1": [0.1, 0.6, 0.3, 0.4, 0.9, 0.2], "fold2": [0.2, 0.3, 0.7, 0.8, 0.1, 0.6]}
    fits = _fits("cnn_lstm", p, seeds=(0, 1)) + _fits("twin", p, seeds=(0, 1))
    result = paired_comparison(fits, reference="cnn_lstm", resamples=300, seed=0, level=0.95)
    entry = result["families"]["twin"]
    for metric in ("roc_auc", "pr_auc"):
        assert (entry[metric]["low"], entry[metric]["high"], entry[metric]["difference"]) == (0.0, 0.0, 0.0)
        assert entry[metric]["verdict"] == "level"
    assert len(entry["per_fit"]) == 4 and all(f["roc_auc"] == 0.0 for f in entry["per_fit"])
    assert result["samples"] == ["n1", "n2", "p1", "p2"] and "cnn_lstm" not in result["families"]


def test_a_family_perfect_on_every_sample_beats_a_constant_reference():
    constant = {"fold1": [0.5] * 6, "fold2": [0.5] * 6}  # ROC-AUC 1/2, PR-AUC 1/2 on any resample
    perfect = {"fold1": [0.1, 0.2, 0.3, 0.7, 0.8, 0.9], "fold2": [0.2, 0.1, 0.3, 0.9, 0.6, 0.8]}
    worst = {"fold1": [0.9, 0.8, 0.7, 0.3, 0.2, 0.1], "fold2": [0.9, 0.8, 0.7, 0.3, 0.2, 0.1]}
    fits = _fits("cnn_lstm", constant, seeds=(0, 1)) + _fits("perfect", perfect) + _fits("worst", worst)
    result = paired_comparison(fits, reference="cnn_lstm", resamples=300, seed=0, level=0.95)
    better, worse = result["families"]["perfect"], result["families"]["worst"]
    assert better["roc_auc"] | {"verdict": None} == {
        "pooled": 1.0,
        "reference_pooled": 0.5,
        "difference": 0.5,
        "low": 0.5,
        "high": 0.5,
        "verdict": None,
    }
    assert better["roc_auc"]["verdict"] == "better" and better["pr_auc"]["verdict"] == "better"
    assert worse["roc_auc"]["difference"] == pytest.approx(-0.5) and worse["roc_auc"]["verdict"] == "worse"
    # an unseeded family's one fit per fold is paired with every seed of the reference
    assert [(f["fold"], f["seed"]) for f in better["per_fit"]] == [
        ("fold1", 0),
        ("fold2", 0),
        ("fold1", 1),
        ("fold2", 1),
    ]


def test_verdict_needs_the_interval_to_exclude_zero():
    assert (verdict(0.01, 0.2), verdict(-0.2, -0.01), verdict(-0.1, 0.1), verdict(0.0, 0.1)) == (
        "better",
        "worse",
        "level",
        "level",
    )


def test_no_reference_no_paired_comparison():
    p = {"fold1": [0.5] * 6, "fold2": [0.5] * 6}
    assert paired_comparison(_fits("mlp", p), reference="cnn_lstm", resamples=10, seed=0, level=0.95) is None


def test_one_held_out_sample_per_class_cannot_give_a_verdict():
    """One fold of one non-persister and one persister sample: every resample is the same two samples,
    the interval is the point difference, and calling it better would be a certainty from nothing."""
    constant = {"fold1": [0.5] * 6, "fold2": [0.5] * 6}
    perfect = {"fold1": [0.1, 0.2, 0.3, 0.7, 0.8, 0.9], "fold2": [0.5] * 6}
    fits = [f for f in _fits("cnn_lstm", constant) + _fits("perfect", perfect) if f.fold == "fold1"]
    result = paired_comparison(fits, reference="cnn_lstm", resamples=100, seed=0, level=0.95)
    entry = result["families"]["perfect"]["roc_auc"]
    assert (entry["low"], entry["high"], entry["difference"]) == (0.5, 0.5, 0.5)
    assert entry["verdict"] == "untested" and result["samples_per_class"] == [1, 1]
    assert verdict(0.5, 0.5, testable=False) == "untested"
