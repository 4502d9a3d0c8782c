"""The promotion gate's decision rule."""

from dataclasses import replace

from oncopersistnet.config import shipped_params
from oncopersistnet.registry import CHALLENGER, CHAMPION
from oncopersistnet.registry.gate import HeadToHead, decide_promotion

GATE = replace(shipped_params().register, min_f1=0.6, min_roc_auc=0.7, tolerance=0.0)
GOOD = {"f1": 0.8, "roc_auc": 0.9}


def test_first_model_that_passes_becomes_champion():
    decision = decide_promotion(GOOD, GATE)
    assert decision.alias == CHAMPION and "no champion yet" in decision.reason


def test_thresholds_are_floors():
    decision = decide_promotion({"f1": 0.5, "roc_auc": 0.65}, GATE)
    assert decision.alias == CHALLENGER
    assert (
        "F1 0.500 < required 0.600" in decision.reason and "ROC-AUC 0.650 < required 0.700" in decision.reason
    )


def test_no_regression_against_the_champion_on_the_same_cells():
    worse = decide_promotion(
        GOOD, GATE, HeadToHead({"f1": 0.79, "roc_auc": 0.95}, {"f1": 0.8, "roc_auc": 0.9}, "3", 100)
    )
    assert (
        worse.alias == CHALLENGER
        and "worse than champion v3" in worse.reason
        and "100 unseen test cells" in worse.reason
    )
    equal = decide_promotion(GOOD, GATE, HeadToHead(dict(GOOD), dict(GOOD), "3", 100))
    assert equal.alias == CHAMPION
    tolerant = decide_promotion(
        GOOD, replace(GATE, tolerance=0.02), HeadToHead({"f1": 0.79, "roc_auc": 0.9}, dict(GOOD), "3", 100)
    )
    assert tolerant.alias == CHAMPION


def test_no_fair_comparison_means_no_promotion():
    decision = decide_promotion(GOOD, GATE, "champion v2 cannot be compared fairly: it reads other genes")
    assert decision.alias == CHALLENGER and "reads other genes" in decision.reason
