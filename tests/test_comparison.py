"""The side-by-side comparison: folds, every model family, leakage, summaries, reports."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from conftest import FAST_TRAIN
from scipy import sparse

from oncopersistnet.choices import ALL_MODEL_FAMILIES
from oncopersistnet.config import shipped_params
from oncopersistnet.data.cells import Cells
from oncopersistnet.errors import DataValidationError
from oncopersistnet.evaluation.candidates import make_candidate
from oncopersistnet.evaluation.comparison import (
    comparison_summary,
    run_comparison,
    sample_level_table,
    summarize,
)
from oncopersistnet.evaluation.folds import build_fold, grouped_splits
from oncopersistnet.evaluation.metrics import METRIC_NAMES
from oncopersistnet.evaluation.posthoc import PostHoc, log_odds

SHIPPED = shipped_params()
PREPROCESS = replace(SHIPPED.preprocess, n_top_genes=150, n_components=16)
PARAMS = replace(SHIPPED, train=FAST_TRAIN, preprocess=PREPROCESS)


def _fold(adata, split, name="holdout"):
    return build_fold(name, Cells.from_anndata(adata), split, config=PREPROCESS)


@pytest.fixture(scope="module")
def fold(small_adata, small_split):
    return _fold(small_adata, small_split)


@pytest.mark.parametrize("family", ALL_MODEL_FAMILIES)
def test_every_family_learns_from_train_and_scores_test(fold, family):
    candidate = make_candidate(family, PARAMS, seed=0).fit(fold)
    probability = candidate.predict_proba(fold, "test")
    assert probability.shape == (len(fold.features["test"].y),)
    assert np.all((probability >= 0) & (probability <= 1))
    assert candidate.hyperparameters()  # what MLflow logs as the family's params
    if family != "cnn_lstm_permuted":  # the premise test may legitimately fail to learn
        from sklearn.metrics import roc_auc_score

        assert roc_auc_score(fold.features["test"].y, probability) > 0.7


@pytest.mark.parametrize("family", ALL_MODEL_FAMILIES)
def test_no_family_sees_test_cells_when_fitting(small_adata, small_split, fold, family):
    """Leakage: wildly changing test cells must not change anything fitted (preprocessor, model)."""
    changed = small_adata.copy()
    counts = sparse.lil_matrix(changed.X, dtype=np.float64)
    test_rows = np.flatnonzero(small_split == "test")
    rng = np.random.default_rng(0)
    counts[test_rows] = rng.poisson(50, size=(test_rows.size, counts.shape[1])).astype(np.float64)
    changed.X = sparse.csr_matrix(counts)
    leaky = _fold(changed, small_split)
    assert np.array_equal(leaky.preprocessor.components_, fold.preprocessor.components_)
    for split in ("train", "val"):
        assert np.array_equal(leaky.features[split].X, fold.features[split].X)
    original = make_candidate(family, PARAMS, seed=1).fit(fold).predict_proba(fold, "val")
    again = make_candidate(family, PARAMS, seed=1).fit(leaky).predict_proba(leaky, "val")
    assert np.allclose(original, again, atol=1e-12)
    assert not np.allclose(fold.features["test"].X, leaky.features["test"].X)  # the change was real


def test_network_seeds_vary_and_repeat(fold):
    first = make_candidate("cnn_lstm", PARAMS, seed=0).fit(fold).predict_proba(fold)
    again = make_candidate("cnn_lstm", PARAMS, seed=0).fit(fold).predict_proba(fold)
    other = make_candidate("cnn_lstm", PARAMS, seed=1).fit(fold).predict_proba(fold)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_permuted_twin_reads_a_different_order_and_mlp_matches_size(fold):
    permuted = make_candidate("cnn_lstm_permuted", PARAMS, seed=0).fit(fold)
    order = permuted.details()["component_order"]
    assert sorted(order) == list(range(fold.features["train"].X.shape[1])) and order != sorted(order)
    network = make_candidate("cnn_lstm", PARAMS, seed=0).fit(fold).details()["n_parameters"]
    mlp = make_candidate("mlp", PARAMS, seed=0).fit(fold).details()["n_parameters"]
    assert abs(mlp - network) / network < 0.1


def test_attention_family_is_the_cnn_lstm_with_attention_pooling_and_runs_in_the_comparison(fold):
    from oncopersistnet.model import CnnLstmAttentionClassifier

    attention = make_candidate("cnn_lstm_attention", PARAMS, seed=0).fit(fold)
    assert attention.family == "cnn_lstm_attention" and isinstance(
        attention.model_, CnnLstmAttentionClassifier
    )
    hyperparameters = attention.hyperparameters()
    assert (
        hyperparameters["train.architecture"] == "cnn_lstm_attention"
        and hyperparameters["attention_units"] == 32
    )
    network = make_candidate("cnn_lstm", PARAMS, seed=0).fit(fold).details()["n_parameters"]
    summary = 2 * FAST_TRAIN.lstm_hidden
    assert attention.details()["n_parameters"] == network + summary * 32 + 32 + 32
    results = run_comparison(
        [fold],
        replace(PARAMS, compare=replace(PARAMS.compare, n_seeds=1)),
        families=["cnn_lstm_attention"],
        progress=False,
    )
    assert [(r.family, r.seed) for r in results] == [("cnn_lstm_attention", 0)]
    assert np.array_equal(
        results[0].probability,
        _posthoc(attention.log_odds(fold, "val"), fold, PARAMS).probability(attention.log_odds(fold)),
    )  # same split and seed, same model, then the common post-hoc step


def test_every_family_is_described_and_ordered_in_the_report():
    from oncopersistnet.evaluation.report import DESCRIPTIONS, ordered_families

    assert set(DESCRIPTIONS) == set(ALL_MODEL_FAMILIES)
    assert ordered_families({f: {} for f in reversed(ALL_MODEL_FAMILIES)})[:3] == [
        "cnn_lstm",
        "cnn_lstm_attention",
        "cnn_lstm_permuted",
    ]


def test_comparison_figure_draws_the_attention_variant_as_a_network(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    from oncopersistnet.evaluation.plots import plot_model_comparison

    drawn: list[list[str]] = []
    original = Axes.barh
    monkeypatch.setattr(
        Axes,
        "barh",
        lambda ax, y, width, **kw: drawn.append(list(kw["color"])) or original(ax, y, width, **kw),
    )
    entry = {m: {"mean": 0.5, "std": 0.1} for m in ("roc_auc", "f1", "brier")}
    plot_model_comparison(
        {"cnn_lstm": entry, "cnn_lstm_attention": entry, "logistic_regression": entry}, tmp_path / "c.png"
    )
    assert drawn and all(colours == ["tab:red", "tab:red", "tab:blue"] for colours in drawn)


def test_summary_gives_mean_and_std_over_seeds(fold):
    params = replace(PARAMS, compare=replace(PARAMS.compare, n_seeds=2))
    results = run_comparison([fold], params, families=["mlp", "logistic_regression"], progress=False)
    assert [(r.family, r.seed) for r in results] == [("mlp", 0), ("mlp", 1), ("logistic_regression", 0)]
    summary = summarize(results)
    f1 = [r.metrics["f1"] for r in results if r.family == "mlp"]
    assert summary["mlp"]["f1"]["mean"] == pytest.approx(np.mean(f1))
    assert summary["mlp"]["f1"]["std"] == pytest.approx(np.std(f1, ddof=1))
    assert (
        summary["logistic_regression"]["n_fits"] == 1 and summary["logistic_regression"]["f1"]["std"] == 0.0
    )
    assert set(METRIC_NAMES) <= set(summary["mlp"])
    table = sample_level_table(results)
    assert set(table["sample"]) == set(fold.test_samples) and set(table["model"]) == {
        "mlp",
        "logistic_regression",
    }


def _posthoc(val_scores, fold, params):
    """The common post-hoc step as the comparison fits it on ``fold``'s validation cells (log-odds)."""
    return PostHoc.fit(
        val_scores,
        fold.features["val"].y,
        method=params.compare.calibration,
        rule=params.compare.threshold_rule,
        fixed_threshold=params.evaluate.threshold,
    )


def _coverage_by_hand(val_p, val_y, p, y, coverage):
    """Split conformal from its definition, per class: the ceil((n + 1) * coverage)-th smallest
    validation score 1 - p(true class); a class is in a cell's set when its score is at most that."""
    quantile = {}
    for k in (0, 1):
        scores = np.sort((1 - val_p if k == 1 else val_p)[val_y == k])
        rank = math.ceil((scores.size + 1) * coverage)
        quantile[k] = scores[rank - 1] if rank <= scores.size else np.inf
    has_persister, has_non_persister = 1 - p <= quantile[1], p <= quantile[0]
    covered = np.where(y == 1, has_persister, has_non_persister)
    return {
        "coverage_persister": covered[y == 1].mean(),
        "coverage_non_persister": covered[y == 0].mean(),
        "coverage_overall": covered.mean(),
        "singleton_fraction": (has_persister != has_non_persister).mean(),
        "both_fraction": (has_persister & has_non_persister).mean(),
        "empty_fraction": (~has_persister & ~has_non_persister).mean(),
    }


def test_conformal_coverage_per_fit_and_its_summary_match_a_computation_by_hand(fold):
    """Each fit's sets are calibrated on its own validation cells and judged on its test cells."""
    from sklearn.linear_model import LogisticRegression

    params = replace(PARAMS, compare=replace(PARAMS.compare, n_seeds=2))
    coverage = 0.8  # not params.predict.coverage: the argument is what counts
    results = run_comparison(
        [fold], params, families=["mlp", "logistic_regression"], coverage=coverage, progress=False
    )
    val, test = fold.features["val"], fold.features["test"]
    regression = LogisticRegression(
        C=params.compare.logistic_c, class_weight="balanced", max_iter=5000, random_state=0
    ).fit(fold.features["train"].X, fold.features["train"].y)
    # (validation, test) probabilities of each fit, from models fitted again outside run_comparison
    raw = {("logistic_regression", 0): tuple(regression.predict_proba(s.X)[:, 1] for s in (val, test))}
    for seed in (0, 1):
        mlp = make_candidate("mlp", params, seed).fit(fold)
        raw["mlp", seed] = (mlp.predict_proba(fold, "val"), mlp.predict_proba(fold, "test"))
    refits = {}  # after the common post-hoc step, fitted on the validation cells
    for key, (val_p, test_p) in raw.items():
        posthoc = _posthoc(log_odds(val_p), fold, params)
        refits[key] = (posthoc.probability(log_odds(val_p)), posthoc.probability(log_odds(test_p)))
    by_hand = {}
    for key, (val_p, test_p) in refits.items():
        result = next(r for r in results if (r.family, r.seed) == key)
        assert np.allclose(test_p, result.probability, atol=1e-12)  # the same model
        by_hand[key] = _coverage_by_hand(val_p, val.y, test_p, test.y, coverage)
        assert result.conformal["coverage"] == coverage
        for name, value in by_hand[key].items():
            assert result.conformal[name] == pytest.approx(value, abs=1e-12), (key, name)
    summary = comparison_summary(results, [fold], params, data_hash="h")
    mlp = summary["models"]["mlp"]["conformal"]
    for name in ("coverage_persister", "coverage_non_persister", "both_fraction", "empty_fraction"):
        values = [by_hand["mlp", seed][name] for seed in (0, 1)]
        assert mlp[name]["mean"] == pytest.approx(np.mean(values), abs=1e-12)
        assert mlp[name]["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    assert summary["models"]["logistic_regression"]["conformal"]["coverage_persister"] == {
        "mean": pytest.approx(by_hand["logistic_regression", 0]["coverage_persister"], abs=1e-12),
        "std": 0.0,
    }
    assert summary["context"]["coverage"] == coverage and mlp["coverage"] == coverage
    rows = {(f["model"], f["seed"]): f["conformal"] for f in summary["fits"]}
    assert rows.keys() == by_hand.keys()
    for key, figures in rows.items():
        assert figures == pytest.approx(by_hand[key], abs=1e-12)


def test_conformal_sets_change_no_metric_of_any_fit(fold):
    """Scoring the validation cells draws no random numbers: later fits (seeds, families) are unchanged."""
    params = replace(PARAMS, compare=replace(PARAMS.compare, n_seeds=2))
    families = ["cnn_lstm", "celltypist", "logistic_regression"]
    plain = run_comparison([fold], params, families=families, progress=False)
    with_sets = run_comparison([fold], params, families=families, coverage=0.9, progress=False)
    assert [(r.family, r.seed) for r in plain] == [(r.family, r.seed) for r in with_sets]
    for a, b in zip(plain, with_sets, strict=True):
        assert np.array_equal(a.probability, b.probability), (a.family, a.seed)
        assert a.metrics == b.metrics and not a.conformal and b.conformal
    assert "conformal" not in summarize(plain)["cnn_lstm"]
    assert "coverage" not in comparison_summary(plain, [fold], params, data_hash="h")["context"]


def test_grouped_splits_test_every_sample_once(small_adata):
    samples = np.asarray(small_adata.obs["sample"], dtype=str)
    y = (small_adata.obs["label"].to_numpy() == "persister").astype(int)
    splits = grouped_splits(samples, y, k=2, val_fraction=0.2, seed=0)
    tested = [sorted(set(samples[s == "test"])) for s in splits]
    assert sorted(sum(tested, [])) == sorted(set(samples))  # each sample tested exactly once
    for split in splits:
        for sample in set(samples):
            assert len(set(split[samples == sample])) == 1  # a sample never straddles two splits
        assert {"train", "val", "test"} == set(split)
    with pytest.raises(DataValidationError, match="needs at least 9 samples of each majority class"):
        grouped_splits(samples, y, k=9, val_fraction=0.2, seed=0)
    untreated = sorted(s for s in set(samples) if s.endswith("day0"))[:3]
    treated = sorted(s for s in set(samples) if "treated" in s)[:3]
    three_each = np.isin(
        samples, untreated + treated
    )  # a 2-fold test fold leaves 1 sample per class: too few
    with pytest.raises(DataValidationError, match="needs at least 4 samples of each majority class"):
        grouped_splits(samples[three_each], y[three_each], k=2, val_fraction=0.2, seed=0)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_four_folds_of_the_default_design_test_one_sample_per_class_and_validate_on_both(seed):
    """4 non-persister and 4 persister samples (the shipped data's design), k = 4."""
    names = [f"n{i}" for i in range(4)] + [f"p{i}" for i in range(4)]
    samples = np.repeat(names, 5)
    y = np.repeat([0] * 4 + [1] * 4, 5)
    splits = grouped_splits(samples, y, k=4, val_fraction=0.25, seed=seed)
    assert len(splits) == 4
    tested = []
    for split in splits:
        test = sorted(set(samples[split == "test"]))
        assert len(test) == 2 and {t[0] for t in test} == {"n", "p"}  # one sample of each class
        for part in ("train", "val", "test"):
            assert set(y[split == part]) == {0, 1}, part  # every part holds both classes
        assert len(set(samples[split == "val"])) == 2  # one validation sample per class
        tested += test
    assert sorted(tested) == names  # each sample tested exactly once


def test_linear_baselines_on_all_genes_are_scikit_learn_on_standardised_log_expression(fold):
    """The all-genes view by hand: log1p of counts per target_sum, standardised on train, then the model."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from oncopersistnet.preprocessing import log_normalize

    logged = {
        s: np.asarray(log_normalize(fold.counts[s], PARAMS.preprocess.target_sum).todense())
        for s in ("train", "test")
    }
    scaler = StandardScaler().fit(logged["train"])
    by_hand = LogisticRegression(
        C=PARAMS.compare.logistic_c, class_weight="balanced", max_iter=5000, random_state=0
    ).fit(scaler.transform(logged["train"]), fold.features["train"].y)
    candidate = make_candidate("logistic_regression_all_genes", PARAMS, 0).fit(fold)
    expected = by_hand.predict_proba(scaler.transform(logged["test"]))[:, 1]
    assert np.allclose(candidate.predict_proba(fold), expected, atol=1e-10)
    assert candidate.genes_read(fold).size == len(fold.genes)
    pca = make_candidate("logistic_regression", PARAMS, 0).fit(fold)
    assert np.array_equal(pca.genes_read(fold), fold.preprocessor.selected_)
    unweighted = replace(PARAMS, compare=replace(PARAMS.compare, class_weight="none"))
    assert make_candidate("logistic_regression", unweighted, 0).fit(fold).model_.class_weight is None


@pytest.mark.parametrize("family", ["celltypist", "hist_gbm", "logistic_regression_all_genes"])
def test_the_post_hoc_step_keeps_each_family_ranking(fold, family):
    """ROC-AUC after the common step equals the family's own on its decision scores: calibration is
    monotone, and no clipping ties cells the family ranks (CellTypist's probabilities mostly round
    to 0 or 1, so it is scored on its decision values)."""
    from sklearn.metrics import roc_auc_score

    result = run_comparison([fold], PARAMS, families=[family], progress=False)[0]  # seed 0 first
    own = make_candidate(family, PARAMS, 0).fit(fold).log_odds(fold)
    assert result.metrics["roc_auc"] == pytest.approx(roc_auc_score(fold.features["test"].y, own), abs=1e-12)
