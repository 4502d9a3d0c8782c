"""The model card every registered version carries.

What it is, what it was trained on, how good it is, where not to use it.

Users deploy what the registry's alias points to; the card (version description
in Markdown, plus searchable tags) lets them judge it without opening the run.
Built from the pipeline's own outputs: the preprocess summary, the evaluate and
compare metrics, and the ONNX model's metadata.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from oncopersistnet.config import Params


def _spread(entry: Mapping[str, Any] | None, metric: str) -> str:
    if not entry:
        return "n/a"
    value = entry[metric]
    return f"{value['mean']:.3f} ± {value['std']:.3f} (n={entry['n_fits']})"


def build_model_card(
    params: Params,
    version: str,
    n_genes: int,
    *,
    metadata: Mapping[str, str],
    split_summary: Mapping[str, Any],
    evaluate: Mapping[str, Any],
    comparison: Mapping[str, Any],
    gate_metrics: Mapping[str, float],
) -> tuple[str, dict[str, str]]:
    """``(markdown description, tags)`` for one registered version."""
    family = str(evaluate.get("model", params.train.architecture))
    mine = comparison.get("models", {}).get(family)
    baselines = {k: v for k, v in comparison.get("models", {}).items() if not k.startswith(family)}
    best_name, best = max(baselines.items(), key=lambda kv: kv[1]["roc_auc"]["mean"], default=(None, None))
    test, raw, cal = evaluate["test"], evaluate["test_uncalibrated"], evaluate["calibration"]
    train, val, held = split_summary["train"], split_summary["val"], split_summary["test"]
    data = params.data
    intended = (
        "research triage of single cells from experiments like the training data "
        f"({', '.join(train['samples'])}): same species, cancer type and protocol; "
        f"label '{data.label_key}' in {data.persister_values} = persister "
        f"vs {data.non_persister_values}"
    )
    limits = (
        f"trained on {len(train['samples'])} samples ({train['cells']} cells) and tested on "
        f"{len(held['samples'])} unseen samples only; the label is a property of the sample; "
        "genes missing from an input are imputed with training means; "
        "not validated on other cancer types or platforms; not a clinical tool"
    )
    lines = [
        f"## {params.register.model_name} v{version}: model card",
        f"**What it is.** ONNX graph: raw counts over {n_genes} genes (float32, NaN = missing gene) "
        "-> calibrated "
        f"persister probability; normalisation, gene selection, imputation, PCA, the {family} network and "
        f"{cal['method']} calibration are inside the graph; runs with onnxruntime alone.",
        f"**Trained on.** Data `{metadata.get('data_hash', '?')}` "
        f"({split_summary.get('input_md5', '?')}): "
        f"{train['cells']} cells of samples {', '.join(train['samples'])}; "
        f"early stopping and calibration on {', '.join(val['samples'])}. "
        f"Params hash `{metadata.get('params_hash', '?')}`, git `{metadata.get('git_commit', '?')}`.",
        f"**Held-out performance** ({held['cells']} cells of {', '.join(held['samples'])}, threshold "
        f"{metadata.get('threshold', '0.5')}): F1 {gate_metrics['f1']:.3f}, "
        f"ROC-AUC {gate_metrics['roc_auc']:.3f}, MCC {test['mcc']:.3f}. "
        f"Over seeds (compare stage): F1 {_spread(mine, 'f1')}, ROC-AUC {_spread(mine, 'roc_auc')}"
        + (f"; best other model by ROC-AUC: {best_name} {_spread(best, 'roc_auc')}." if best_name else "."),
        f"**Calibration.** Brier {raw['brier']:.3f} -> {test['brier']:.3f}, "
        f"ECE {raw['ece']:.3f} -> {test['ece']:.3f} after {cal['method']} scaling.",
        _trust_line(gate_metrics),
        f"**Intended use.** {intended}.",
        f"**Known limits.** {limits}.",
    ]
    tags = {
        "data_hash": metadata.get("data_hash", ""),
        "params_hash": metadata.get("params_hash", ""),
        "git_commit": metadata.get("git_commit", ""),
        "n_genes": str(n_genes),
        "architecture": family,
        "calibration": json.dumps(cal),
        "training_samples": ",".join(train["samples"]),
        "test_samples": ",".join(held["samples"]),
        "test_f1": f"{gate_metrics['f1']:.4f}",
        "test_roc_auc": f"{gate_metrics['roc_auc']:.4f}",
        "comparison_f1": _spread(mine, "f1"),
        "comparison_roc_auc": _spread(mine, "roc_auc"),
        "test_brier": f"{test['brier']:.4f}",
        "test_ece": f"{test['ece']:.4f}",
        **_trust_tags(gate_metrics),
        "intended_use": intended[:4000],
        "known_limits": limits[:4000],
    }
    return "\n\n".join(lines), tags


def _trust_line(gate: Mapping[str, float]) -> str:
    """What the card says of the model's own doubt: conformal coverage and the OOD flag, on test cells."""
    if "conformal_coverage_persister" not in gate or "ood_threshold" not in gate:
        return "**Uncertainty.** This model carries no conformal scores or out-of-distribution threshold."
    return (
        f"**Uncertainty.** `predict` labels a cell by its conformal prediction set at "
        f"{gate['conformal_target_coverage']:.0%} coverage per class (fitted on the validation samples); "
        f"on the test cells the sets held the true class for {gate['conformal_coverage_persister']:.1%} of "
        f"persisters and {gate['conformal_coverage_non_persister']:.1%} of non-persisters, with "
        f"{gate['conformal_both_fraction']:.1%} of cells 'uncertain' (both classes) and "
        f"{gate['conformal_empty_fraction']:.1%} with an empty set (the labels turn where the sets do, "
        "not at the threshold the metrics above use: `predict` prints the cut-offs). A cell farther than "
        f"{gate['ood_threshold']:.3f} from the training cells (PPCA Mahalanobis distance of its measured "
        "genes; the validation cells' high quantile) is flagged out of distribution: "
        f"{gate['ood_fraction']:.1%} of test cells were."
    )


def _trust_tags(gate: Mapping[str, float]) -> dict[str, str]:
    """The OOD threshold and rate and the conformal coverage on test cells, as registry tags."""
    keys = (
        "ood_threshold",
        "ood_fraction",
        "conformal_coverage_persister",
        "conformal_coverage_non_persister",
    )
    return {key: f"{gate[key]:.4f}" for key in keys if key in gate}
