"""The bodies of the README's generated sections, each rendered from committed metrics files.

Every number a reader sees in the README comes from a file the pipeline wrote, so
the text cannot drift from the results; :mod:`oncopersistnet.reporting.readme`
decides where each body goes. The tables themselves belong to the stages' own
reports (comparison, transfer, cross-study) and are reused here, not re-typed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from oncopersistnet.evaluation.report import (
    context_line,
    coverage_table,
    paired_line,
    premise_summary,
    reads_table,
    results_table,
)
from oncopersistnet.transfer.cross_study_report import cross_study_markdown
from oncopersistnet.transfer.report import transfer_table


def calibration_line(evaluate: Mapping[str, Any]) -> str:
    """Before/after calibration of the deployable model (the evaluate stage's output)."""
    raw, cal, how = evaluate["test_uncalibrated"], evaluate["test"], evaluate["calibration"]
    return (
        f"Calibration of the deployable {evaluate['model']} ({how['method']} scaling fitted on the "
        f"validation samples, baked into the ONNX graph): Brier {raw['brier']:.3f} → {cal['brier']:.3f}, "
        f"ECE {raw['ece']:.3f} → {cal['ece']:.3f}, F1 at 0.5 {raw['f1']:.3f} → {cal['f1']:.3f} on the "
        "held-out cells (`reports/figures/calibration.png`)."
    )


def deployable_line(evaluate: Mapping[str, Any]) -> str:
    """The one-split figures, labelled as what they are: the report of the one model that ships."""
    test = evaluate["test"]
    return (
        f"The deployable model's own report (`metrics/evaluate.json`, not a comparison): the deployed "
        f"{evaluate['model']}, one fit at `train.seed` on the pipeline's train/validation/test split, on its "
        f"{test['n_test_samples']} held-out samples ({test['n_test_cells']:,} cells): ROC-AUC "
        f"{test['roc_auc']:.3f}, PR-AUC {test['pr_auc']:.3f}, F1 at 0.5 {test['f1']:.3f}."
    )


def results_block(comparison: Mapping[str, Any], evaluate: Mapping[str, Any]) -> str:
    """Where the comparison's numbers come from, its table and paired verdicts, the controls, and the
    deployable model's own one-split report and calibration."""
    parts = [
        context_line(comparison),
        results_table(comparison),
        paired_line(comparison),
        reads_table(comparison),
        premise_summary(comparison),
        deployable_line(evaluate),
        calibration_line(evaluate),
    ]
    return "\n\n".join(parts).strip()


#: What the coverage section says while the metrics files predate the conformal figures.
COVERAGE_PENDING = (
    "Not measured yet: `metrics/comparison.json` and `metrics/evaluate.json` were written before the "
    "compare and evaluate stages reported conformal coverage; `make run` (or `dvc repro`) fills this in."
)


def _quantile_text(value: float | None) -> str:
    return "none (always in the set)" if value is None else f"{value:.3f}"


def deployed_coverage_line(evaluate: Mapping[str, Any]) -> str:
    """The deployed model's sets, calibrated on the validation samples, on the held-out cells."""
    c = evaluate["conformal"]
    return (
        f"The deployed {evaluate['model']} (calibrated probabilities; sets calibrated on "
        f"{c['n_calibration_non_persister']:,} non-persister and {c['n_calibration_persister']:,} persister "
        f"validation cells; score quantile {_quantile_text(c['quantile_non_persister'])} for non-persister, "
        f"{_quantile_text(c['quantile_persister'])} for persister) at coverage {c['coverage']}: "
        f"persisters covered {c['coverage_persister']:.3f}, "
        f"non-persisters {c['coverage_non_persister']:.3f}, all cells {c['coverage_overall']:.3f}; "
        f"{c['both_fraction']:.1%} of the "
        f"{evaluate['test']['n_test_cells']:,} held-out cells get both classes (uncertain), "
        f"{c['empty_fraction']:.1%} an empty set."
    )


def coverage_block(comparison: Mapping[str, Any], evaluate: Mapping[str, Any]) -> str:
    """Per model family and for the deployed model: how often each class's held-out cells are in their
    conformal set, and how often a set is uncertain (both classes) or empty."""
    table = coverage_table(comparison)
    if table is None or "conformal" not in evaluate or "coverage" not in comparison["context"]:
        return COVERAGE_PENDING
    intro = (
        f"Nominal coverage {comparison['context']['coverage']} (`predict.coverage`) per class; "
        "mean ± sample std over the fits of the comparison above (the same seeds and test samples), "
        "each fit's sets calibrated on its own validation cells."
    )
    return "\n\n".join([intro, table, deployed_coverage_line(evaluate)])


def transfer_block(summary: Mapping[str, Any]) -> str:
    """Where the model went, how much of its gene panel it found there, and the table."""
    if "skipped" in summary:
        return f"Transfer skipped: {summary['skipped']}."
    study, match = summary["study"], summary["study"]["gene_match"]
    mode = "head retrained on frozen conv/LSTM layers" if summary["mode"] == "head" else "all weights trained"
    scaling = "refitted" if summary["refit_scaling"] else "kept"
    where = (
        f"The pipeline's registered model on `{study['input']}` ({study['cells']:,} cells); "
        f"tested on samples {', '.join(study['samples']['test'])} ({study['test_cells']:,} cells), "
        f"fine-tuned on {', '.join(study['samples']['train'])} ({mode}, scaling {scaling}). "
        f"The new panel holds {match['model_genes_found']:,} of the model's {match['model_genes']:,} "
        f"genes and {match['selected_genes_found']:,} of the {match['selected_genes']:,} it reads."
    )
    return "\n\n".join([where, transfer_table(summary)])


def _planted_line(planted: Mapping[str, Any]) -> str:
    """How well the attributions find the genes the simulator planted."""
    k = planted["k"]
    return (
        f"Against the simulator's planted genes (|log fold change| > {planted['lfc_cut']}): "
        f"precision@{k} **{planted['precision_at_k']:.2f}** (chance {planted['chance_rate']:.3f}), "
        f"recall@{k} {planted['recall_at_k']:.2f}, AUROC planted vs not {planted['auroc']:.3f}; "
        f"{planted['planted_genes_read']} of {planted['planted_genes']} planted genes survive gene selection "
        f"(the model cannot attribute to the rest). "
        f"Planted genes in the top {k}: {', '.join(planted['hits'])}."
    )


def _signature_table(summary: Mapping[str, Any]) -> str:
    """Overlap of the top genes with each shipped published signature."""
    rows = [
        f"| published signature | genes | read by the model | in the top {summary['top']} "
        "| expected by chance | p (hypergeometric) |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in summary["signatures"].items():
        overlap_genes = f" ({', '.join(s['overlap_genes'])})" if s["overlap_genes"] else ""
        rows.append(
            f"| {name} ({s['source'].split(' (')[0]}) | {s['signature_genes']} | "
            f"{s['genes_read_by_model']} | {s['overlap']}{overlap_genes} | {s['expected_overlap']:.2f} "
            f"| {s['p_value']:.2g} |"
        )
    return "\n".join(rows)


#: What the explain block says while ``metrics/explain.json`` predates the class-contrastive fields.
SIGNED_PENDING = (
    "Signed ranking and planted-sign check: not measured yet (`metrics/explain.json` was written before "
    "the explain stage computed class-contrastive attributions; `make run` or `dvc repro explain` fills "
    "this in)."
)

#: Printed with the signature table on simulated data (``planted`` present).
CIRCULARITY_CAVEAT = (
    "On simulated data this overlap is circular: the simulator's programme was drawn from these "
    "published signatures, so finding their genes only repeats what was planted, and the p-values are "
    "not evidence about biology."
)


def _signed_lines(summary: Mapping[str, Any]) -> list[str]:
    """The one signed ranking and, on simulated data, whether planted down and up genes keep their sign."""
    ranking = summary.get("signed_ranking")
    if not ranking:
        return [SIGNED_PENDING] if "signed_ranking" not in summary else []
    c = summary["contrastive"]
    toward = [
        f"{r['gene']} ({r['signed_attribution']:+.2f})" for r in ranking[:10] if r["signed_attribution"] > 0
    ]
    away = [
        f"{r['gene']} ({r['signed_attribution']:+.2f})" for r in ranking[:10] if r["signed_attribution"] < 0
    ]
    lines = [
        "Signed ranking, class-contrastive (each persister cell integrated from the mean non-persister "
        "cell and each non-persister from the mean persister; completeness median gap "
        f"{c['median_abs_gap']:.3f}; the genes' shares add up to the logit gap between the classes, "
        f"{c['separation_sum']:.2f} of {c['logit_separation']:.2f}). Per gene, the mean |attribution| "
        "signed by the way the model reads it; top 10: higher expression → persister: "
        f"{', '.join(toward) or 'none'}; higher expression → non-persister: {', '.join(away) or 'none'}."
    ]
    signs = summary.get("planted_signs")
    if signs:
        lines.append(_planted_signs_line(signs))
    return lines


def _planted_signs_line(signs: Mapping[str, Any]) -> str:
    """Share of planted down / up genes read with the planted sign, against a coin (0.5)."""

    def part(name: str, figures: Mapping[str, Any]) -> str:
        if not figures["genes_read"]:
            return f"no planted {name} gene is read"
        wrong = f"; wrong: {', '.join(figures['wrong_sign_genes'])}" if figures["wrong_sign_genes"] else ""
        return (
            f"**{figures['right_sign']} of {figures['genes_read']}** "
            f"({figures['fraction_right']:.2f}, one-sided binomial p {figures['p_value']:.2g}{wrong})"
        )

    named = ", ".join(f"{g} {v:+.3f}" for g, v in signs["proliferation_genes_read"].items()) or "none"
    return (
        f"Planted signs (|log fold change| > {signs['lfc_cut']}, genes the model reads; chance "
        f"{signs['chance']}): planted down in persisters and read as higher expression → non-persister: "
        f"{part('down', signs['down'])}; planted up and read as → persister: {part('up', signs['up'])}. "
        f"Named proliferation genes the model reads: {named}."
    )


def explain_block(summary: Mapping[str, Any]) -> str:
    """Recovery of the planted programme, the signed ranking and planted signs, signature overlap."""
    completeness = summary["completeness"]
    lines = [
        f"Integrated gradients of the calibrated logit on {summary['cells']:,} held-out cells "
        f"({summary['persister_cells']:,} persisters; classes from {summary['classes_from']}), over the "
        f"{summary['genes_read']:,} genes the model reads; each cell's attributions add up to its logit "
        f"change (median gap {completeness['median_abs_gap']:.3f} on a median change of "
        f"{completeness['median_abs_logit_change']:.2f})."
    ]
    if summary.get("planted"):
        lines.append(_planted_line(summary["planted"]))
    lines.extend(_signed_lines(summary))
    lines.append(_signature_table(summary))
    if summary.get("planted"):
        lines.append(CIRCULARITY_CAVEAT)
    return "\n\n".join(lines)


def cross_study_block(summary: Mapping[str, Any]) -> str:
    """The cross-study report (``reports/cross_study.md``) without its title, its sections one level down."""
    body = cross_study_markdown(dict(summary)).split("\n", 1)[1]  # drop the "# ..." title
    return re.sub(r"^## ", "#### ", body, flags=re.MULTILINE)


def trust_block(trust: Mapping[str, Any]) -> str:
    """The deployed model's out-of-distribution rate on each dataset of the trust stage, as a table."""
    rows = [
        "| cells | model genes measured | no call | called cells flagged out of distribution "
        "| median distance | called persister | uncertain |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    keys = ("same_world", "other_world", "other_world_control", "external", "external_control")
    order = [key for key in keys if key in trust["datasets"]]
    for key in order:
        figures = trust["datasets"][key]
        rows.append(
            f"| {figures['name']}: {figures['description']} ({figures['cells']:,} cells) "
            f"| {figures['gene_fraction']:.0%} | {figures['no_call_fraction']:.1%} "
            f"| **{figures['ood_fraction_of_called']:.1%}** | {figures['median_ood_distance']:.2f} "
            f"| {figures['persister_fraction_of_called']:.1%} "
            f"| {figures['uncertain_fraction_of_called']:.1%} |"
        )
    lead = (
        f"Threshold {trust['ood_threshold']:.3f}: the {1 - trust['nominal_rate']:.0%} quantile of the "
        f"validation cells' distance, so about {trust['nominal_rate']:.0%} of cells like the training data "
        "are flagged by chance (`reports/figures/ood_distance.png`)."
    )
    return "\n".join([lead, "", *rows])
