"""The transfer stage's Markdown report: the adapted model beside models trained on the new data alone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oncopersistnet.evaluation.metrics import METRIC_NAMES
from oncopersistnet.evaluation.report import results_table

ZERO_SHOT = "transferred, zero-shot"
FINE_TUNED = "transferred, fine-tuned"


def as_single_fit(metrics: Mapping[str, float]) -> dict[str, Any]:
    """One fit's metrics in the comparison summary's shape (mean, no spread)."""
    return {"n_fits": 1} | {name: {"mean": float(metrics[name]), "std": 0.0} for name in METRIC_NAMES}


def transfer_table(summary: Mapping[str, Any]) -> str:
    """Zero-shot and fine-tuned transfer first, then the models trained on the new data only."""
    models = {
        ZERO_SHOT: as_single_fit(summary["zero_shot"]),
        FINE_TUNED: as_single_fit(summary["fine_tuned"]),
    }
    models |= {
        f"{family} (new data only)": entry for family, entry in summary["trained_on_new_data_only"].items()
    }
    return results_table({"models": models}, order=list(models))


def _parent(summary: Mapping[str, Any]) -> str:
    uri = summary.get("parent_model_uri")
    return f"`{uri}`" if uri else "(the pipeline's model; its registry version: the registration record)"


def transfer_markdown(summary: Mapping[str, Any]) -> str:
    """``reports/transfer.md``."""
    study = summary["study"]
    match = study["gene_match"]
    samples = study["samples"]
    registration = summary.get("registration", {})
    refit = (
        "scaling statistics refitted on the new training cells"
        if summary["refit_scaling"]
        else "scaling statistics kept"
    )
    tuned = (
        "the dense head retrained on frozen convolutional and recurrent layers"
        if summary["mode"] == "head"
        else "every weight trained from the parent's"
    )
    model_share = match["model_genes_found"] / max(match["model_genes"], 1)
    selected_share = match["selected_genes_found"] / max(match["selected_genes"], 1)
    lines = [
        f"# Transfer to `{study['dataset']}`",
        "",
        # the parent's registry URI is store-dependent: the stage's report leaves it out
        f"Parent model {_parent(summary)} applied to "
        f"`{study['input']}` ({study['cells']:,} cells x {study['genes']:,} genes, data "
        f"{study['data_hash']}). Split by sample: fine-tuned on {', '.join(samples['train'])}, "
        f"early-stopped and calibrated on {', '.join(samples['val'])}, tested on "
        f"{', '.join(samples['test'])} ({study['test_cells']:,} cells), the same test cells for every row.",
        "",
        f"Gene overlap: {match['model_genes_found']:,} of the model's {match['model_genes']:,} genes "
        f"({model_share:.1%}), {match['selected_genes_found']:,} of the "
        f"{match['selected_genes']:,} it reads ({selected_share:.1%}); "
        "the rest are imputed with the training means, as the deployed graph does.",
        "",
        f"Fine-tuning: {tuned}; {refit}; best epoch {summary['best_epoch']}. Rows marked *new data only* "
        "are the compare stage's model families trained on the new training samples alone (mean ± std "
        "over seeds where the fit depends on one).",
        "",
        transfer_table(summary),
        "",
    ]
    if registration:
        lines += [
            f"Registered as `{registration['model_name']}` version {registration['version']} "
            f"(alias `{registration['alias']}`: {registration['reason']}).",
            "",
        ]
    return "\n".join(lines)
