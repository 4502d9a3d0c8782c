"""Stage explain: which genes the deployed model leans on, checked against known truth.

Integrated gradients through the exported path (counts -> log-normalised genes
-> PCA -> network -> calibrated logit) on held-out test cells, aggregated per
gene and class. On simulated data (``data.input: null``) the ranking is scored
against every gene the simulator planted, beside the chance rate; on any data
against the shipped published persister signatures. Everything is computed
before anything is written, so a bad input leaves no partial output.
"""

from __future__ import annotations

import logging
import math
import re

import numpy as np

from oncopersistnet.atomic import write_metrics_json, write_table
from oncopersistnet.config import Params
from oncopersistnet.data.simulate import planted_programme
from oncopersistnet.errors import InputDataError
from oncopersistnet.explain.explainer import (
    annotated_table,
    evenly_spaced,
    explain_cells,
    explanation_summary,
)
from oncopersistnet.explain.figure import plot_attributions
from oncopersistnet.explain.signatures import load_signatures
from oncopersistnet.model import load_checkpoint
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.preprocessing import CellPreprocessor
from oncopersistnet.preprocessing.outputs import read_split_cells
from oncopersistnet.tracking import configure_mlflow, load_run_id, log_params_once, resumed_run

logger = logging.getLogger(__name__)

#: Genes of the signed ranking in the figure (the CSV and the JSON hold ``explain.top``).
FIGURE_GENES = 20


def _metric_key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def mlflow_metrics(summary: dict, k: int) -> dict[str, float]:
    """The numbers worth a chart in MLflow, named ``explain_*``; NaN (undefined) ones left out."""
    metrics = {
        "explain_cells": summary["cells"],
        "explain_completeness_max_gap": summary["completeness"]["max_abs_gap"],
        "explain_completeness_median_gap": summary["completeness"]["median_abs_gap"],
    }
    planted = summary.get("planted")
    if planted:
        metrics.update(
            {
                f"explain_precision_at_{k}": planted["precision_at_k"],
                "explain_chance_rate": planted["chance_rate"],
                f"explain_recall_at_{k}": planted["recall_at_k"],
                "explain_planted_auroc": planted["auroc"],
                "explain_direction_agreement": planted["direction_agreement"],
            }
        )
    signs = summary.get("planted_signs")
    if signs:
        for side in ("down", "up"):
            if signs[side]["fraction_right"] is not None:
                metrics[f"explain_planted_{side}_right_sign"] = signs[side]["fraction_right"]
    for name, overlap in summary["signatures"].items():
        metrics[f"explain_signature_{_metric_key(name)}_overlap"] = overlap["overlap"]
        metrics[f"explain_signature_{_metric_key(name)}_expected"] = overlap["expected_overlap"]
    return {key: float(value) for key, value in metrics.items() if not math.isnan(float(value))}


def run(params: Params, paths: ProjectPaths) -> None:
    """Write ``metrics/explain.json``, ``reports/attributions.csv`` and the attribution figure; log them."""
    import mlflow

    config = params.explain
    run_id = load_run_id(paths.run_reference)
    preprocessor = CellPreprocessor.load(paths.preprocessor)
    network = load_checkpoint(paths.model)
    test = read_split_cells(paths, "test")
    if not np.array_equal(test.genes, preprocessor.genes_):
        raise InputDataError(
            f"{paths.validated}: its {test.genes.size} genes are not the {preprocessor.genes_.size} genes "
            f"{paths.preprocessor} was fitted on; rerun the preprocess stage"
        )
    if test.y.size == 0:
        raise InputDataError(f"{paths.split_table}: the test split has no cells to explain")
    planted = None
    if params.data.input is None:
        planted = planted_programme(params.simulate)
        if set(planted.index) != set(test.genes):
            raise InputDataError(
                f"{paths.validated}: its genes are not the simulator's for the current simulate params; "
                "rerun ingest"
            )
    chosen = evenly_spaced(test.y.size, config.cells)
    counts = test.X[chosen].toarray().astype(np.float32)
    logger.info(
        "integrated gradients on %d of %d test cells, %d steps", chosen.size, test.y.size, config.steps
    )
    explanation = explain_cells(
        preprocessor, network, counts, steps=config.steps, top=config.top, is_persister=test.y[chosen] == 1
    )
    signatures = load_signatures()
    summary = explanation_summary(explanation, config.top, planted, signatures=signatures)
    table = annotated_table(explanation.table, planted, signatures)

    configure_mlflow(params.mlflow, paths.root)  # a store that cannot be used stops here, before any output
    write_table(paths.attributions, table, index=True)
    planted_genes = (
        None if planted is None else set(planted.index[planted.abs() > summary["planted"]["lfc_cut"]])
    )
    title = (
        f"Integrated gradients on {summary['cells']} held-out cells ({summary['persister_cells']} persister)"
    )
    if summary["planted"]:
        p = summary["planted"]
        title += (
            f"\nprecision@{p['k']} vs planted genes {p['precision_at_k']:.2f} (chance {p['chance_rate']:.2f})"
        )
    plot_attributions(
        explanation.table,
        paths.attributions_figure,
        n_genes=min(FIGURE_GENES, config.top),
        planted=planted_genes,
        signature_genes={g for s in signatures for g in s.direction},
        title=title,
    )
    write_metrics_json(paths.explain_metrics, summary)
    logger.info("wrote %s, %s and %s", paths.explain_metrics, paths.attributions, paths.attributions_figure)
    if summary["planted"]:
        p = summary["planted"]
        logger.info(
            "precision@%d against planted genes: %.3f (chance %.3f), planted AUROC %.3f",
            p["k"],
            p["precision_at_k"],
            p["chance_rate"],
            p["auroc"],
        )
    with resumed_run(run_id):
        log_params_once(params.flat(["explain"]))
        mlflow.log_metrics(mlflow_metrics(summary, config.top))
        mlflow.log_artifact(str(paths.attributions_figure), artifact_path="figures")
        mlflow.log_artifact(str(paths.attributions), artifact_path="explain")
        mlflow.log_table(data=table.reset_index(), artifact_file="explain/attributions.json")
