"""The README's generated sections (results, attributions, transfer, cross-study) come from metrics/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from oncopersistnet.choices import ALL_MODEL_FAMILIES
from oncopersistnet.errors import InputDataError
from oncopersistnet.reporting.blocks import results_block, trust_block
from oncopersistnet.reporting.readme import (
    BLOCKS,
    block_body,
    end_marker,
    render,
    replace_block,
    start_marker,
    update_readme,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_readme_block_matches_the_committed_metrics(name):
    readme = (ROOT / "README.md").read_text()
    assert block_body(readme, name) == render(name, ROOT / "metrics"), (
        f"README {name} block is stale: run `make results`"
    )


def test_replace_block_rewrites_only_its_block():
    text = f"intro\n{start_marker('transfer')}\nold\n{end_marker('transfer')}\noutro\n"
    new = replace_block(text, "transfer", "new body")
    assert new == f"intro\n{start_marker('transfer')}\nnew body\n{end_marker('transfer')}\noutro\n"
    with pytest.raises(InputDataError, match="no explain block"):
        replace_block(text, "explain", "x")


def test_a_missing_metrics_file_is_named(tmp_path):
    with pytest.raises(InputDataError, match="transfer.json: cannot be read"):
        render("transfer", tmp_path)


def test_readme_results_come_from_the_pipeline_output():
    comparison = json.loads((ROOT / "metrics/comparison.json").read_text())
    readme = (ROOT / "README.md").read_text()
    block = block_body(readme, "results")
    evaluate = json.loads((ROOT / "metrics/evaluate.json").read_text())
    assert block == results_block(comparison, evaluate), (
        "README results are stale: run `make results` after `make run`"
    )
    assert set(comparison["models"]) == set(ALL_MODEL_FAMILIES)


def test_update_readme_rewrites_only_the_block(tmp_path):
    metrics = tmp_path / "metrics"
    shutil.copytree(ROOT / "metrics", metrics)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")  # blocks read files beside metrics/ too
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    stale = "\n\n".join(f"{start_marker(name)}\nold numbers\n{end_marker(name)}" for name in BLOCKS)
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{stale}\n\nafter\n")
    assert update_readme(readme, metrics)
    text = readme.read_text()
    assert "old numbers" not in text and text.startswith("# title") and text.endswith("after\n")
    assert "| cnn_lstm |" in text
    assert not update_readme(readme, metrics)  # idempotent


def test_trust_block_shows_each_dataset_rate_from_the_file():
    figures = {
        "name": "other world",
        "description": "another world_seed",
        "cells": 3000,
        "gene_fraction": 0.1355,
        "no_call_fraction": 0.0,
        "ood_fraction_of_called": 0.9683,
        "median_ood_distance": 1.7515,
        "persister_fraction_of_called": 0.1122,
        "uncertain_fraction_of_called": 0.291,
    }
    block = trust_block({"ood_threshold": 1.2345, "nominal_rate": 0.01, "datasets": {"other_world": figures}})
    assert block.startswith(
        "Threshold 1.234: the 99% quantile of the validation cells' distance, so about 1%"
    )
    assert (
        "| other world: another world_seed (3,000 cells) | 14% | 0.0% | **96.8%** | 1.75 | 11.2% | 29.1% |"
        in block
    )


def _synthetic_metrics():
    """A comparison of two families (3 seeds / 1 fit) and a deployed model, with conformal figures."""

    def entry(n_fits, figures):
        return {"n_fits": n_fits, "conformal": {"coverage": 0.9} | figures}

    comparison = {
        "context": {"coverage": 0.9},
        "models": {
            "logistic_regression": entry(
                1,
                {
                    "coverage_persister": {"mean": 0.8126, "std": 0.0},
                    "coverage_non_persister": {"mean": 0.95, "std": 0.0},
                    "both_fraction": {"mean": 0.0, "std": 0.0},
                    "empty_fraction": {"mean": 0.1, "std": 0.0},
                },
            ),
            "cnn_lstm": entry(
                3,
                {
                    "coverage_persister": {"mean": 0.9, "std": 0.01234},
                    "coverage_non_persister": {"mean": float("nan"), "std": 0.0},
                    "both_fraction": {"mean": 0.25, "std": 0.05},
                    "empty_fraction": {"mean": 0.0, "std": 0.0},
                },
            ),
        },
    }
    evaluate = {
        "model": "cnn_lstm",
        "test": {"n_test_cells": 1200},
        "conformal": {
            "coverage": 0.9,
            "quantile_non_persister": 0.41234,
            "quantile_persister": None,
            "n_calibration_non_persister": 1500,
            "n_calibration_persister": 8,
            "coverage_persister": 1.0,
            "coverage_non_persister": 0.8876,
            "coverage_overall": 0.9,
            "singleton_fraction": 0.75,
            "both_fraction": 0.25,
            "empty_fraction": 0.0,
        },
    }
    return comparison, evaluate


def test_coverage_block_renders_every_family_and_the_deployed_model():
    from oncopersistnet.reporting.blocks import coverage_block

    comparison, evaluate = _synthetic_metrics()
    intro, table, deployed = coverage_block(comparison, evaluate).split("\n\n")
    assert intro.startswith("Nominal coverage 0.9 (`predict.coverage`) per class")
    # the project's family order, not the dict's; ± only where there was more than one fit; NaN as n/a
    header = "| model | persisters covered | non-persisters covered | both classes (uncertain) | empty set "
    assert table.splitlines() == [
        header + "| fits |",
        "|---|---|---|---|---|---|",
        "| cnn_lstm | 0.900 ± 0.012 | n/a | 0.250 ± 0.050 | 0.000 ± 0.000 | 3 |",
        "| logistic_regression | 0.813 | 0.950 | 0.000 | 0.100 | 1 |",
    ]
    assert deployed == (
        "The deployed cnn_lstm (calibrated probabilities; sets calibrated on 1,500 non-persister and 8 "
        "persister validation cells; score quantile 0.412 for non-persister, none (always in the set) for "
        "persister) at coverage 0.9: persisters covered 1.000, non-persisters 0.888, all cells 0.900; "
        "25.0% of the 1,200 held-out cells get both classes (uncertain), 0.0% an empty set."
    )


def test_coverage_block_waits_for_metrics_that_have_the_figures():
    from oncopersistnet.reporting.blocks import COVERAGE_PENDING, coverage_block

    comparison, evaluate = _synthetic_metrics()
    old_comparison = {"context": {}, "models": {f: {"n_fits": 1} for f in comparison["models"]}}
    old_evaluate = {k: v for k, v in evaluate.items() if k != "conformal"}
    assert coverage_block(old_comparison, evaluate) == COVERAGE_PENDING
    assert coverage_block(comparison, old_evaluate) == COVERAGE_PENDING
    assert coverage_block(comparison, evaluate) != COVERAGE_PENDING


def test_comparison_report_has_a_coverage_section_only_when_measured():
    import pandas as pd

    from oncopersistnet.evaluation.report import comparison_markdown

    comparison, _ = _synthetic_metrics()
    committed = json.loads((ROOT / "metrics/comparison.json").read_text())
    columns = ["model", "sample", "sample_label", "called_persister_fraction", "mean_probability"]
    per_sample = pd.DataFrame(columns=[*columns, "sample_correct"])
    before = committed | {  # a metrics file from before the conformal figures
        "context": {k: v for k, v in committed["context"].items() if k != "coverage"},
        "models": {
            family: {k: v for k, v in entry.items() if k != "conformal"}
            for family, entry in committed["models"].items()
        },
    }
    assert "Conformal" not in comparison_markdown(before, per_sample)
    with_sets = before | {
        "context": before["context"] | comparison["context"],
        "models": {f: e | comparison["models"].get(f, {}) for f, e in before["models"].items()},
    }
    report = comparison_markdown(with_sets, per_sample)
    assert "## Conformal prediction sets on the held-out samples" in report
    assert "at coverage 0.9, calibrated on each fit's validation cells" in report
    assert "| logistic_regression | 0.813 | 0.950 | 0.000 | 0.100 | 1 |" in report
    assert "| mlp |" not in report.split("## Conformal")[1].split("##")[0]  # no figures, no row


def _explain_summary(**extra):
    """The keys explain_block reads, with hand-set figures."""
    base = {
        "cells": 10,
        "persister_cells": 4,
        "classes_from": "labels",
        "genes_read": 3,
        "top": 2,
        "completeness": {"median_abs_gap": 0.01, "median_abs_logit_change": 1.5},
        "planted": None,
        "signatures": {
            "s": {
                "source": "Someone et al. 2000 X (doi:y)",
                "signature_genes": 2,
                "genes_read_by_model": 1,
                "overlap": 1,
                "overlap_genes": ["AXL"],
                "expected_overlap": 0.5,
                "p_value": 0.25,
            }
        },
    }
    base.update(extra)
    return base


def test_explain_block_prints_the_signed_ranking_planted_signs_and_the_caveat():
    from oncopersistnet.reporting.blocks import CIRCULARITY_CAVEAT, SIGNED_PENDING, explain_block

    planted = {
        "k": 2,
        "lfc_cut": 0.5,
        "precision_at_k": 0.5,
        "chance_rate": 0.2,
        "recall_at_k": 0.5,
        "auroc": 0.7,
        "planted_genes_read": 2,
        "planted_genes": 5,
        "hits": ["VIM"],
    }
    signed = {
        "contrastive": {"median_abs_gap": 0.02, "separation_sum": 3.1, "logit_separation": 3.2},
        "signed_ranking": [
            {"gene": "VIM", "higher_expression_towards": "persister", "signed_attribution": 0.69},
            {"gene": "PCNA", "higher_expression_towards": "non_persister", "signed_attribution": -0.03},
        ],
        "planted_signs": {
            "lfc_cut": 0.5,
            "chance": 0.5,
            "down": {
                "genes_read": 4,
                "right_sign": 3,
                "fraction_right": 0.75,
                "p_value": 0.3125,
                "wrong_sign_genes": ["G1"],
            },
            "up": {
                "genes_read": 0,
                "right_sign": 0,
                "fraction_right": None,
                "p_value": None,
                "wrong_sign_genes": [],
            },
            "proliferation_genes_read": {"PCNA": -0.03},
        },
    }
    block = explain_block(_explain_summary(planted=planted, **signed))
    assert (
        "higher expression → persister: VIM (+0.69); higher expression → non-persister: PCNA (-0.03)" in block
    )
    assert "3.10 of 3.20" in block
    assert "**3 of 4** (0.75, one-sided binomial p 0.31; wrong: G1)" in block
    assert "no planted up gene is read" in block and "PCNA -0.030" in block
    assert "| 0.50 | 0.25 |" in block  # expected by chance, then the p-value
    assert block.endswith(CIRCULARITY_CAVEAT) and "p-values are not evidence" in CIRCULARITY_CAVEAT
    # Real data (no planted truth): no caveat about the simulator, no planted signs.
    real = explain_block(_explain_summary(**{**signed, "planted_signs": None}))
    assert CIRCULARITY_CAVEAT not in real and "Planted signs" not in real and "VIM (+0.69)" in real
    # A metrics file from before the contrastive fields says so instead of failing or inventing numbers.
    assert SIGNED_PENDING in explain_block(_explain_summary(planted=planted))


def _paired_comparison():
    """Three families, cross-validated, with the paired record the compare stage writes."""

    def entry(n_fits, roc, pr, view="pca", genes=500.0):
        figures = {m: {"mean": 0.5, "std": 0.01} for m in ("f1", "balanced_accuracy", "mcc", "brier", "ece")}
        return {
            "n_fits": n_fits,
            "roc_auc": {"mean": roc, "std": 0.02},
            "pr_auc": {"mean": pr, "std": 0.03},
            "threshold": {"mean": 0.3125, "std": 0.05},
            "validation": {"roc_auc": {"mean": roc - 0.01, "std": 0.04}},
            "genes": {"view": view, "genes_read": genes, "planted_read": 23.0, "planted_total": 99},
        } | figures

    def diff(point, low, high, verdict):
        return {
            "pooled": 0.8 + point,
            "reference_pooled": 0.8,
            "difference": point,
            "low": low,
            "high": high,
        } | {"verdict": verdict}

    return {
        "context": {
            "data_hash": "abc",
            "cv_folds": 4,
            "seeds": [0, 1],
            "class_weight": "balanced",
            "calibration": "platt",
            "threshold_rule": "youden",
            "test_samples": ["n1", "p1"],
            "n_test_cells": 10,
        },
        "models": {
            "marker_score": entry(4, 0.9, 0.8, view="signature", genes=50.0),
            "cnn_lstm": entry(8, 0.85, 0.75),
            "cnn_lstm_permuted": entry(8, 0.6, 0.45),
        },
        "permutations": [],
        "paired": {
            "reference": "cnn_lstm",
            "unit": "sample",
            "resamples": 1000,
            "seed": 0,
            "level": 0.95,
            "samples": ["n1", "p1"],
            "seeds": [0, 1],
            "folds": ["fold1"],
            "families": {
                "marker_score": {
                    "roc_auc": diff(0.0123, -0.0104, 0.031, "level"),
                    "pr_auc": diff(0.05, 0.001, 0.09, "better"),
                },
                "cnn_lstm_permuted": {
                    "roc_auc": diff(-0.25, -0.4, -0.1, "worse"),
                    "pr_auc": diff(-0.3, -0.5, -0.12, "worse"),
                },
            },
        },
    }


def test_results_table_leads_with_threshold_free_metrics_and_bolds_nothing():
    from oncopersistnet.evaluation.report import results_table

    lines = results_table(_paired_comparison()).splitlines()
    assert lines[0] == (
        "| model | ROC-AUC | PR-AUC | F1 | bal. acc. | MCC | Brier ↓ | ECE ↓ | fits |"
        " ROC-AUC vs cnn_lstm (Δ [95% CI]) | PR-AUC vs cnn_lstm (Δ [95% CI]) |"
    )
    assert lines[1] == "|---|" + "---|" * 10
    rest = " 0.500 ± 0.010 | 0.500 ± 0.010 | 0.500 ± 0.010 | 0.500 ± 0.010 | 0.500 ± 0.010 |"
    assert lines[2:] == [
        "| cnn_lstm | 0.850 ± 0.020 | 0.750 ± 0.030 |" + rest + " 8 | reference | reference |",
        "| cnn_lstm_permuted | 0.600 ± 0.020 | 0.450 ± 0.030 |" + rest + " 8 |"
        " -0.250 [-0.400, -0.100] worse | -0.300 [-0.500, -0.120] worse |",
        "| marker_score | 0.900 ± 0.020 | 0.800 ± 0.030 |" + rest + " 4 |"
        " +0.012 [-0.010, +0.031] level | +0.050 [+0.001, +0.090] better |",
    ]
    assert "**" not in "\n".join(lines)


def test_results_block_explains_the_paired_verdicts_and_labels_the_deployable_report():
    from oncopersistnet.evaluation.report import PAIRED_PENDING

    evaluate = {
        "model": "cnn_lstm",
        "calibration": {"method": "platt"},
        "test": {"n_test_samples": 2, "n_test_cells": 745, "roc_auc": 0.8826, "pr_auc": 0.7963, "f1": 0.734}
        | {"brier": 0.127, "ece": 0.051},
        "test_uncalibrated": {"brier": 0.158, "ece": 0.151, "f1": 0.713},
    }
    block = results_block(_paired_comparison(), evaluate)
    assert "grouped 4-fold cross-validation by sample (every sample tested once" in block
    assert (
        "Δ: a model's ROC-AUC (PR-AUC) on the pooled out-of-fold predictions of all 2 held-out samples "
        "minus the cnn_lstm's, averaged over seeds [0, 1]; in brackets the 95% percentile interval over "
        "1,000 paired bootstrap resamples of the held-out samples"
    ) in block
    assert (
        "- With random component orders: ROC-AUC 0.550 vs 0.800 (-0.250 [-0.400, -0.100] worse), "
        "PR-AUC 0.500 vs 0.800 (-0.300 [-0.500, -0.120] worse)"
    ) in block
    assert (
        "The deployable model's own report (`metrics/evaluate.json`, not a comparison): the deployed "
        "cnn_lstm, one fit at `train.seed` on the pipeline's train/validation/test split, on its 2 held-out "
        "samples (745 cells): ROC-AUC 0.883, PR-AUC 0.796, F1 at 0.5 0.734."
    ) in block
    assert (
        "platt calibration of its own probability's log-odds, then the cut that maximises sensitivity + "
        "specificity (Youden's J, i.e. balanced accuracy) on its calibrated validation cells "
        "(`compare.threshold_rule: youden`)"
    ) in block
    assert (
        "| marker_score | a signature picked from all genes | 50 | 23 of 99 | 0.312 ± 0.050 | 0.890 ± 0.040 |"
        in block
    )
    assert PAIRED_PENDING not in block
    before = {k: v for k, v in _paired_comparison().items() if k != "paired"}
    old = results_block(before, evaluate)
    assert PAIRED_PENDING in old and "vs cnn_lstm (Δ" not in old and "**" not in old


def test_per_fold_table_averages_each_fold_over_seeds_and_shows_the_range():
    from oncopersistnet.evaluation.report import comparison_markdown, per_fold_table

    comparison = _paired_comparison()
    comparison["paired"]["folds"] = ["fold1", "fold2"]
    comparison["paired"]["families"]["marker_score"]["per_fit"] = [
        {"fold": "fold1", "seed": 0, "roc_auc": 0.01, "pr_auc": 0.0},
        {"fold": "fold2", "seed": 0, "roc_auc": -0.02, "pr_auc": 0.0},
        {"fold": "fold1", "seed": 1, "roc_auc": 0.03, "pr_auc": 0.0},
        {"fold": "fold2", "seed": 1, "roc_auc": -0.04, "pr_auc": 0.0},
    ]
    comparison["paired"]["families"]["cnn_lstm_permuted"]["per_fit"] = [
        {"fold": "fold1", "seed": 0, "roc_auc": -0.3, "pr_auc": -0.1},
        {"fold": "fold2", "seed": 0, "roc_auc": -0.1, "pr_auc": -0.2},
    ]
    assert per_fold_table(comparison).splitlines() == [
        "| model | fold1 | fold2 |",
        "|---|---|---|",
        "| cnn_lstm_permuted | -0.300 | -0.100 |",
        "| marker_score | +0.020 (+0.010 to +0.030) | -0.030 (-0.040 to -0.020) |",
    ]
    assert per_fold_table({k: v for k, v in comparison.items() if k != "paired"}) is None
    import pandas as pd

    per_sample = pd.DataFrame(
        columns=["model", "sample", "sample_label", "called_persister_fraction", "mean_probability"]
        + ["sample_correct"]
    )
    report = comparison_markdown(comparison, per_sample)
    assert "## Differences with the reference, fold by fold" in report and "**" not in report
