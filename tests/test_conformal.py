"""Class-conditional split conformal: the coverage guarantee on exchangeable draws, by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from oncopersistnet.errors import InputDataError, ModelError
from oncopersistnet.inference.conformal import (
    BOTH_CLASSES,
    COVERAGE_FIGURES,
    EMPTY_SET,
    ConformalCalibration,
    coverage_by_class,
    held_out_report,
    set_names,
)


def _draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A noisy classifier: labels 30 % persister, probabilities overlapping between classes."""
    y = (rng.random(n) < 0.3).astype(int)
    logit = rng.normal(loc=np.where(y == 1, 1.0, -1.0), scale=1.5)
    return 1 / (1 + np.exp(-logit)), y


def test_quantile_is_the_finite_sample_rank_by_hand():
    # 9 scores per class, coverage 0.8: rank ceil(10 * 0.8) = 8 -> the 8th smallest
    cal = ConformalCalibration(non_persister=np.arange(1, 10) / 10, persister=np.arange(1, 10) / 20)
    assert cal.quantiles(0.8) == pytest.approx([0.8, 0.4])
    # coverage 0.95 needs rank ceil(9.5) = 10 > 9 scores: no finite quantile, the class is always in
    assert np.isinf(cal.quantiles(0.95)).all()


def test_fit_sorts_each_class_score_and_round_trips_through_metadata():
    cal = ConformalCalibration.fit(np.array([0.9, 0.2, 0.6, 0.1]), np.array([1, 0, 1, 0]))
    assert cal.persister == pytest.approx([0.1, 0.4])  # 1 - p of persisters
    assert cal.non_persister == pytest.approx([0.1, 0.2])  # p of non-persisters
    back = ConformalCalibration.from_metadata(cal.to_metadata())
    assert back.persister == pytest.approx(cal.persister)
    with pytest.raises(ModelError, match="malformed"):
        ConformalCalibration.from_metadata({"persister": [0.1]})


def test_sets_and_their_names():
    cal = ConformalCalibration(non_persister=np.array([0.3] * 99), persister=np.array([0.4] * 99))
    # persister in the set when 1 - p <= 0.4 (p >= 0.6); non-persister when p <= 0.3
    sets = cal.sets(np.array([0.9, 0.1, 0.45]), 0.9)
    assert set_names(sets).tolist() == ["persister", "non-persister", EMPTY_SET]
    wide = ConformalCalibration(non_persister=np.array([0.7] * 99), persister=np.array([0.7] * 99))
    assert set_names(wide.sets(np.array([0.5]), 0.9)).tolist() == [BOTH_CLASSES]


@pytest.mark.parametrize("coverage", [0.8, 0.9])
def test_each_class_is_covered_at_the_nominal_rate_on_exchangeable_draws(coverage):
    """The guarantee: 1 - alpha <= E[coverage_c] <= 1 - alpha + 1 / (n_c + 1), per class."""
    rng = np.random.default_rng(0)
    per_class = {"coverage_persister": [], "coverage_non_persister": []}
    for _ in range(400):
        cal = ConformalCalibration.fit(*_draw(rng, 200))
        p, y = _draw(rng, 400)
        figures = coverage_by_class(cal.sets(p, coverage), y)
        for key in per_class:
            per_class[key].append(figures[key])
    for key, values in per_class.items():
        mean = float(np.mean(values))
        # persisters: ~60 calibration cells -> slack 1/61; the Monte-Carlo error of the mean is < 0.003
        assert coverage - 0.006 <= mean <= coverage + 1 / 50, (key, mean)


def test_marginal_sets_would_undercover_the_minority_class_where_mondrian_does_not():
    """Why class-conditional: one pooled quantile lets the rarer, harder class fall short."""
    rng = np.random.default_rng(1)
    y = (rng.random(20000) < 0.15).astype(int)
    p = 1 / (1 + np.exp(-rng.normal(np.where(y == 1, 0.3, -1.5), 1.0)))
    cal_idx, test_idx = np.arange(10000), np.arange(10000, 20000)
    mondrian = ConformalCalibration.fit(p[cal_idx], y[cal_idx])
    own = coverage_by_class(mondrian.sets(p[test_idx], 0.9), y[test_idx])
    pooled_scores = np.where(y[cal_idx] == 1, 1 - p[cal_idx], p[cal_idx])
    pooled_q = np.sort(pooled_scores)[math.ceil(10001 * 0.9) - 1]
    pooled = ConformalCalibration(non_persister=np.full(9, pooled_q), persister=np.full(9, pooled_q))
    marginal = coverage_by_class(pooled.sets(p[test_idx], 0.5), y[test_idx])
    assert own["coverage_persister"] == pytest.approx(0.9, abs=0.02)
    assert marginal["coverage_persister"] < 0.85


def test_coverage_by_class_counts_set_sizes():
    sets = np.array([[True, False], [True, True], [False, False], [False, True]])
    figures = coverage_by_class(sets, np.array([0, 1, 1, 0]))
    assert figures["coverage_non_persister"] == 0.5
    assert figures["coverage_persister"] == 0.5
    assert (figures["singleton_fraction"], figures["both_fraction"], figures["empty_fraction"]) == (
        0.5,
        0.25,
        0.25,
    )


def test_bad_inputs_are_readable_errors():
    with pytest.raises(InputDataError, match="strictly between 0 and 1"):
        ConformalCalibration(non_persister=np.ones(3), persister=np.ones(3)).quantiles(1.0)
    with pytest.raises(InputDataError, match="no validation cell of class 'persister'"):
        ConformalCalibration.fit(np.array([0.1, 0.2]), np.array([0, 0]))


def test_held_out_report_by_hand():
    # 4 calibration scores per class, coverage 0.6: rank ceil(5 * 0.6) = 3 -> the 3rd smallest
    cal = ConformalCalibration(
        non_persister=np.array([0.1, 0.2, 0.3, 0.4]), persister=np.array([0.05, 0.15, 0.25, 0.35])
    )
    # persister in the set when 1 - p <= 0.25 (p >= 0.75); non-persister when p <= 0.3
    p = np.array([0.9, 0.8, 0.5, 0.2, 0.1, 0.6])
    y = np.array([1, 0, 1, 0, 1, 0])
    report = held_out_report(cal, p, y, coverage=0.6)
    assert report == {
        "coverage": 0.6,
        "quantile_non_persister": pytest.approx(0.3),
        "quantile_persister": pytest.approx(0.25),
        "n_calibration_non_persister": 4,
        "n_calibration_persister": 4,
        # persisters: 0.9 covered, 0.5 empty, 0.1 in {non-persister}: 1 of 3
        "coverage_persister": pytest.approx(1 / 3),
        # non-persisters: 0.8 in {persister}, 0.2 covered, 0.6 empty: 1 of 3
        "coverage_non_persister": pytest.approx(1 / 3),
        "coverage_overall": pytest.approx(2 / 6),
        "singleton_fraction": pytest.approx(4 / 6),
        "both_fraction": 0.0,
        "empty_fraction": pytest.approx(2 / 6),
    }
    assert list(report)[5:] == list(COVERAGE_FIGURES)
    # coverage 0.9 needs rank ceil(4.5) = 5 > 4 scores: no finite quantile, written as None
    wide = held_out_report(cal, p, y, coverage=0.9)
    assert wide["quantile_persister"] is None and wide["both_fraction"] == 1.0
    json.dumps(wide, allow_nan=False)  # JSON-ready: no infinities
