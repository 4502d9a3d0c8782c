"""The comparison's common post-hoc step: calibration and a validation-chosen cut, the same for all."""

from __future__ import annotations

import numpy as np
import pytest

from oncopersistnet.evaluation.posthoc import PostHoc, choose_threshold, log_odds


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _brute_force(y, p, score):
    """The cut among the observed probabilities with the best ``score(predicted, y)``; ties to the highest."""
    best, best_cut = -np.inf, None
    for cut in np.unique(p)[::-1]:
        value = score((p >= cut).astype(int), y)
        if value > best:
            best, best_cut = value, cut
    return best_cut


def _youden(predicted, y):
    return predicted[y == 1].mean() - predicted[y == 0].mean()


def _f1(predicted, y):
    tp = int((predicted & y).sum())
    return 2 * tp / (predicted.sum() + y.sum())


@pytest.mark.parametrize(("rule", "score"), [("youden", _youden), ("f1", _f1)])
def test_the_chosen_cut_is_the_best_observed_cut_by_brute_force(rule, score):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    p = np.round(_sigmoid(1.5 * y - 0.8 + rng.normal(0, 1, 300)), 2)  # rounded: ties on purpose
    assert choose_threshold(y, p, rule=rule, fixed=0.5) == pytest.approx(_brute_force(y, p, score))


def test_fixed_rule_and_a_one_class_split_use_the_fixed_cut():
    y, p = np.array([0, 1, 1, 0]), np.array([0.1, 0.9, 0.8, 0.3])
    assert choose_threshold(y, p, rule="fixed", fixed=0.37) == 0.37
    assert choose_threshold(np.ones(4), p, rule="youden", fixed=0.42) == 0.42
    with pytest.raises(ValueError, match="unknown threshold rule"):
        choose_threshold(y, p, rule="median", fixed=0.5)


def test_platt_step_recovers_a_known_miscalibration():
    """Cells whose true persister chance is sigmoid(z), scored sigmoid(2 z + 1) (over-confident and
    over-calling): Platt on the log-odds must find scale 1/2 and shift -1/2."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, 40_000)
    y = (rng.random(z.size) < _sigmoid(z)).astype(int)
    posthoc = PostHoc.fit(2 * z + 1, y, method="platt", rule="youden", fixed_threshold=0.5)
    assert posthoc.scale == pytest.approx(0.5, abs=0.03)
    assert posthoc.shift == pytest.approx(-0.5, abs=0.05)
    assert np.allclose(posthoc.probability(2 * z + 1), _sigmoid(z), atol=0.03)


def test_a_shifted_scorer_gets_the_calls_its_ranking_allows():
    """Two scorers with the same ranking, one shifted far down (as an uncalibrated or class-weighted
    model is): at 0.5 their F1 differ wildly; after the same post-hoc step they call the same cells."""
    rng = np.random.default_rng(1)
    y_val, y_test = rng.integers(0, 2, 2000), rng.integers(0, 2, 2000)
    honest_val, honest_test = (_sigmoid(2 * y - 1 + rng.normal(0, 1, 2000)) for y in (y_val, y_test))
    shifted_val, shifted_test = (_sigmoid(log_odds(p) - 4) for p in (honest_val, honest_test))
    assert ((shifted_test >= 0.5) == y_test).mean() < 0.6 < ((honest_test >= 0.5) == y_test).mean()
    calls = []
    for val_p, test_p in ((honest_val, honest_test), (shifted_val, shifted_test)):
        posthoc = PostHoc.fit(log_odds(val_p), y_val, method="platt", rule="youden", fixed_threshold=0.5)
        calls.append(posthoc.probability(log_odds(test_p)) >= posthoc.threshold)
    assert np.array_equal(calls[0], calls[1])


def test_without_calibration_the_probability_is_the_family_own():
    p = np.array([0.02, 0.3, 0.71, 0.99])
    posthoc = PostHoc.fit(
        log_odds(p), np.array([0, 0, 1, 1]), method="none", rule="fixed", fixed_threshold=0.5
    )
    assert (posthoc.scale, posthoc.shift, posthoc.threshold) == (1.0, 0.0, 0.5)
    assert np.allclose(posthoc.probability(log_odds(p)), p)


def test_log_odds_keep_the_ranking_of_tiny_probabilities():
    """Probabilities far below 1e-12 (CellTypist's, for most cells) keep their order as log-odds."""
    p = np.array([1e-40, 1e-30, 1e-20, 1e-13, 0.5])
    assert np.all(np.diff(log_odds(p)) > 0) and log_odds(np.array([0.0]))[0] > -np.inf
