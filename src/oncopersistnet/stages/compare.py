"""Stage compare: every model family on the same folds and seeds, side by side in MLflow and DVC.

Writes ``metrics/comparison.json`` (``dvc metrics show/diff``), ``reports/comparison.md``,
``metrics/comparison_per_sample.csv``, one ROC / PR curve file per model under ``plots/`` and
figures; logs one MLflow run per model family with the same metric names, so the
UI's compare view and ``mlflow.search_runs`` put them in one table. Every fit's conformal
sets (``predict.coverage``, calibrated on its validation cells) are judged on its test cells
(``test_conformal_*``). With ``compare.cv_folds: k`` every sample is tested once; the paired
bootstrap of every family against the CNN-LSTM (``paired`` in the metrics file,
:mod:`oncopersistnet.evaluation.paired`) says better / level / worse.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from oncopersistnet.atomic import rounded, write_metrics_json, write_table, write_text
from oncopersistnet.config import MODEL_SECTIONS, Params
from oncopersistnet.data.simulate import planted_programme
from oncopersistnet.evaluation.comparison import (
    comparison_summary,
    run_comparison,
    sample_level_table,
)
from oncopersistnet.evaluation.fits import FitResult
from oncopersistnet.evaluation.folds import pipeline_folds
from oncopersistnet.evaluation.metrics import METRIC_NAMES, curve_tables
from oncopersistnet.evaluation.plots import plot_model_comparison, plot_roc_pr
from oncopersistnet.evaluation.report import comparison_markdown
from oncopersistnet.explain.truth import PLANTED_LFC_CUT
from oncopersistnet.inference.conformal import COVERAGE_FIGURES
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.provenance import run_provenance
from oncopersistnet.tracking import configure_mlflow, flatten_for_mlflow, tracked_run

logger = logging.getLogger(__name__)


def _comparison_id(provenance: dict[str, str], params: Params) -> str:
    """Same data, params and code -> same id: the runs of one comparison share it."""
    key = "|".join(
        [
            provenance["data_hash"],
            params.hash([*MODEL_SECTIONS, "compare", "evaluate"]),
            f"coverage={params.predict.coverage}",
            provenance["git_commit"],
            provenance.get("dvc_experiment", ""),
        ]
    )
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _log_family_run(
    family: str,
    results: Sequence[FitResult],
    entry: dict,
    *,
    params: Params,
    tags: dict[str, str],
    paths: ProjectPaths,
) -> str:
    import mlflow

    experiment = f"{tags['dvc_experiment']}/" if "dvc_experiment" in tags else ""
    with tracked_run(run_name=f"{experiment}compare/{family}", tags=tags | {"model_family": family}) as run:
        mlflow.log_params(
            flatten_for_mlflow(
                params.flat(MODEL_SECTIONS + ("compare",))
                | {
                    "evaluate.threshold": params.evaluate.threshold,
                    "predict.coverage": params.predict.coverage,
                    "compare.seeds": sorted({r.seed for r in results}),
                }
                # the family's own settings win (the MLP run says train.architecture=mlp)
                | {
                    k if k.startswith("train.") else f"model.{k}": v
                    for k, v in results[0].hyperparameters.items()
                }
            )
        )
        mlflow.log_dict(
            [{"fold": r.fold, "seed": r.seed} | r.details for r in results], "comparison/fit_details.json"
        )
        conformal = entry.get("conformal", {})
        mlflow.log_metrics(
            {f"test_{m}": entry[m]["mean"] for m in METRIC_NAMES}
            | {f"test_{m}_std": entry[m]["std"] for m in METRIC_NAMES}
            | {f"val_{m}": v["mean"] for m, v in entry["validation"].items()}
            | {"threshold": entry["threshold"]["mean"], "genes_read": entry["genes"]["genes_read"]}
            | {f"test_conformal_{f}": conformal[f]["mean"] for f in COVERAGE_FIGURES if f in conformal}
            | {f"test_conformal_{f}_std": conformal[f]["std"] for f in COVERAGE_FIGURES if f in conformal}
            | {"n_fits": entry["n_fits"], "fit_seconds": float(np.mean([r.seconds for r in results]))}
        )
        for step, result in enumerate(results):  # every fit, as steps: the UI charts the spread
            mlflow.log_metrics(
                {f"fit_test_{m}": v for m, v in result.metrics.items()}
                | {
                    f"fit_test_conformal_{f}": result.conformal[f]
                    for f in COVERAGE_FIGURES
                    if result.conformal
                },
                step=step,
            )
        if "n_parameters" in results[0].details:
            mlflow.log_metric("n_parameters", results[0].details["n_parameters"])
        for artifact in (
            paths.comparison_report,
            paths.comparison_per_sample,
            paths.figures / "model_comparison.png",
        ):
            mlflow.log_artifact(str(artifact), artifact_path="comparison")
        return run.info.run_id


def _planted_genes(params: Params) -> list[str] | None:
    """On simulated data, the genes the simulator planted (|log fold change| > the explain
    stage's cut), so that the report can say how many of them each family reads."""
    if params.data.input is not None:
        return None
    planted = planted_programme(params.simulate)
    return sorted(planted.index[planted.abs() > PLANTED_LFC_CUT].astype(str))


def run(params: Params, paths: ProjectPaths) -> None:
    """Fit, test, summarise, write and log every model family."""
    folds = pipeline_folds(params, paths)
    results = run_comparison(folds, params, coverage=params.predict.coverage)
    per_sample = sample_level_table(results)
    provenance = run_provenance(params, paths, "", run_kind="comparison")
    comparison = comparison_summary(
        results, folds, params, data_hash=provenance["data_hash"], planted=_planted_genes(params)
    )
    write_metrics_json(paths.comparison_metrics, comparison)
    write_table(paths.comparison_per_sample, per_sample)
    # rendered from the figures as written, so the report and metrics/comparison.json agree digit for digit
    write_text(paths.comparison_report, comparison_markdown(rounded(comparison), per_sample))

    # Curves of the first fold at train.seed (with cv_folds: 0, the deployed model's split and seed).
    first = {r.family: r for r in results if r.fold == folds[0].name and r.seed == params.train.seed}
    tables = {
        family: curve_tables(r.y, r.probability, family, threshold=r.threshold) for family, r in first.items()
    }
    for family, table in tables.items():
        for kind in ("roc", "pr"):
            write_table(paths.plots / kind / f"{family}.csv", table[kind])
    plot_roc_pr(
        pd.concat([t["roc"] for t in tables.values()]),
        pd.concat([t["pr"] for t in tables.values()]),
        {family: r.metrics for family, r in first.items()},
        path=paths.figures / "roc_pr.png",
    )
    models = comparison["models"]
    plot_model_comparison(models, paths.figures / "model_comparison.png")

    configure_mlflow(params.mlflow, paths.root)
    # The id (which includes the git commit) lives in MLflow only: the git-tracked
    # metrics file must not change when nothing but the commit did.
    comparison_id = _comparison_id(provenance, params)
    tags = provenance | {"comparison_id": comparison_id}
    del tags["model_family"]
    for family in models:
        _log_family_run(
            family,
            [r for r in results if r.family == family],
            models[family],
            params=params,
            tags=tags,
            paths=paths,
        )
    for family, entry in models.items():
        logger.info(
            "%-20s F1 %.3f ± %.3f  ROC-AUC %.3f ± %.3f  Brier %.3f  "
            "coverage at %.2f: persister %.3f, non-persister %.3f  (%d fits)",
            family,
            entry["f1"]["mean"],
            entry["f1"]["std"],
            entry["roc_auc"]["mean"],
            entry["roc_auc"]["std"],
            entry["brier"]["mean"],
            entry["conformal"]["coverage"],
            entry["conformal"]["coverage_persister"]["mean"],
            entry["conformal"]["coverage_non_persister"]["mean"],
            entry["n_fits"],
        )
    logger.info(
        "wrote %s and %s; %d MLflow runs (comparison %s)",
        paths.comparison_metrics,
        paths.comparison_report,
        len(models),
        comparison_id,
    )
