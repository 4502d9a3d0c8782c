"""The promotion gate's decision rule."""

from oncopersistnet.config import RegisterConfig
from oncopersistnet.registry import CHALLENGER, CHAMPION, decide_promotion

GATE = RegisterConfig(min_f1=0.6, min_roc_auc=0.7, tolerance=0.0)


def test_first_model_that_passes_becomes_champion():
    decision = decide_promotion({"f1": 0.8, "roc_auc": 0.9}, None, GATE)
    assert decision.alias == CHAMPION and "no champion yet" in decision.reason


def test_thresholds_are_floors():
    decision = decide_promotion({"f1": 0.5, "roc_auc": 0.65}, None, GATE)
    assert decision.alias == CHALLENGER
    assert "F1 0.500 < required 0.600" in decision.reason and "ROC-AUC 0.650 < required 0.700" in decision.reason


def test_no_regression_against_the_champion_on_the_same_cells():
    champion = {"f1": 0.8, "roc_auc": 0.9}
    worse = decide_promotion({"f1": 0.79, "roc_auc": 0.95}, champion, GATE, champion_version="3")
    assert worse.alias == CHALLENGER and "worse than champion v3" in worse.reason
    equal = decide_promotion(dict(champion), champion, GATE, champion_version="3")
    assert equal.alias == CHAMPION
    tolerant = decide_promotion({"f1": 0.79, "roc_auc": 0.9}, champion, RegisterConfig(tolerance=0.02), champion_version="3")
    assert tolerant.alias == CHAMPION
