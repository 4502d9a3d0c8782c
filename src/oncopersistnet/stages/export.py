"""Stage export: one ONNX graph from raw counts to probability, parity-checked before it is kept."""

from __future__ import annotations

import json
import logging

from oncopersistnet.atomic import atomic_path, write_metrics_json, write_text
from oncopersistnet.config import Params
from oncopersistnet.export import export_onnx, fit_trust, parity_check
from oncopersistnet.export.metadata import model_metadata
from oncopersistnet.model import load_checkpoint
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.preprocessing import CellPreprocessor
from oncopersistnet.preprocessing.outputs import read_split_cells
from oncopersistnet.tracking import configure_mlflow, load_run_reference, log_params_once, resumed_run

logger = logging.getLogger(__name__)


def run(params: Params, paths: ProjectPaths) -> None:
    """Write ``models/oncopersistnet.onnx`` only if onnxruntime matches PyTorch on held-out cells."""
    import mlflow

    configure_mlflow(params.mlflow, paths.root)
    reference = load_run_reference(paths.run_reference)
    run_id = reference["run_id"]
    preprocessor = CellPreprocessor.load(paths.preprocessor)
    network = load_checkpoint(paths.model)
    summary = json.loads(paths.preprocess_summary.read_text())
    metadata = model_metadata(
        preprocessor,
        network,
        model_name=params.register.model_name,
        threshold=params.evaluate.threshold,
        calibration=params.train.calibration,
        fit_samples=summary["train"]["samples"] + summary["val"]["samples"],
        # Not the run id nor the git commit: they differ per clone and per MLflow store, and this
        # file is a DVC output (dvc.lock must not). The register stage stamps them onto the
        # registered copy (registry.publish.with_provenance).
        provenance={
            key: reference.get(key, "") for key in ("data_hash", "params_hash", "oncopersistnet_version")
        },
    )
    val = read_split_cells(paths, "val")
    trust = fit_trust(
        preprocessor,
        network,
        train_counts=read_split_cells(paths, "train").X,
        val_counts=val.X,
        val_y=val.y,
        ood_quantile=params.export.ood_quantile,
    )
    test = read_split_cells(paths, "test", limit=params.export.parity_cells)
    with atomic_path(paths.onnx) as tmp:
        export_onnx(preprocessor, network, tmp, metadata=metadata, trust=trust, opset=params.export.opset)
        figures = parity_check(
            tmp,
            preprocessor,
            network,
            trust=trust,
            counts=test.X.toarray(),
            tolerance=params.export.parity_tolerance,
            seed=params.train.seed,
        )
    logger.info("wrote %s and %s", paths.onnx, paths.genes)
    write_text(paths.genes, "\n".join(map(str, preprocessor.genes_)) + "\n")
    figures |= {"ood_threshold": trust.distance.threshold_, "ood_quantile": trust.distance.quantile}
    write_metrics_json(paths.export_metrics, figures)
    with resumed_run(run_id):
        log_params_once(params.flat(["export"]))
        mlflow.log_metrics({f"onnx_{k}": v for k, v in figures.items()})
