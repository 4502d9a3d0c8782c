"""Trace :class:`DeployedGraph` to ONNX with the model's metadata, and check parity.

The gene list and provenance travel inside the ``.onnx`` file (``metadata_props``),
so a model pulled from the registry carries everything inference needs.
The exporter is TorchScript-based (``dynamo=False``, explicit since torch 2.9
flipped the default) with a dynamic batch axis; see ../shared/STACK-NOTES.md.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
import torch

from oncopersistnet.atomic import atomic_path
from oncopersistnet.errors import ModelError
from oncopersistnet.export.graph import DeployedGraph, TrustedGraph
from oncopersistnet.export.trust import TrustCalibration
from oncopersistnet.inference.model import DISTANCE_NAME, INPUT_NAME, OUTPUT_NAME
from oncopersistnet.model.network import PersisterNetwork
from oncopersistnet.model.training import predict_proba
from oncopersistnet.preprocessing.transformer import CellPreprocessor

logger = logging.getLogger(__name__)


def export_onnx(
    preprocessor: CellPreprocessor,
    network: PersisterNetwork,
    path: str | Path,
    *,
    metadata: Mapping[str, object],
    trust: TrustCalibration,
    opset: int = 17,
) -> onnx.ModelProto:
    """Write the deployed graph to ``path`` (atomically) and return the ONNX proto.

    Two outputs: the persister probability and the out-of-distribution distance; the
    distance's threshold and the conformal scores travel in the metadata.
    """
    graph = TrustedGraph(DeployedGraph(preprocessor, network), preprocessor, trust.distance).eval()
    example = torch.zeros(2, len(preprocessor.genes_), dtype=torch.float32)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # The tracer warns about the LSTM batch size and about the exporter's future;
        # both are known and harmless here (parity is checked right after).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            (example,),
            str(tmp),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME, DISTANCE_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}, DISTANCE_NAME: {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
        proto = onnx.load(str(tmp))
        meta = {
            "genes": json.dumps([str(g) for g in preprocessor.genes_]),
            **{k: _to_str(v) for k, v in {**metadata, **trust.metadata()}.items()},
        }
        onnx.helper.set_model_props(proto, meta)
        proto.producer_name = "oncopersistnet"
        proto.doc_string = (
            "Raw counts over the model's genes (float32, NaN for a gene the input lacks) "
            "-> persister probability, and the cell's distance to the training cells (out of "
            "distribution above metadata 'ood' threshold). Gene order: metadata 'genes'."
        )
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
    logger.info("exported ONNX graph: %d input genes -> persister probability", len(preprocessor.genes_))
    return proto


def _to_str(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def parity_check(
    onnx_path: str | Path,
    preprocessor: CellPreprocessor,
    network: PersisterNetwork,
    *,
    trust: TrustCalibration,
    counts: np.ndarray,
    tolerance: float,
    seed: int = 0,
) -> dict[str, float]:
    """Compare onnxruntime with the Python path (preprocessor + torch) on the same cells.

    Runs the full batch, single cells and a copy with ~10 % of genes set missing
    (NaN), so batching and imputation are both covered. Both outputs are checked: the
    probability absolutely, the out-of-distribution distance relative to its size (it is
    ~1 for a typical cell and unbounded above). Raises :class:`ModelError` when the largest
    difference exceeds ``tolerance``.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    counts = np.asarray(counts, dtype=np.float32)
    rng = np.random.default_rng(seed)
    with_missing = counts.copy()
    with_missing[:, rng.random(counts.shape[1]) < 0.1] = np.nan
    outputs = [OUTPUT_NAME, DISTANCE_NAME]

    figures: dict[str, float] = {}
    for name, matrix in (("full", counts), ("missing_genes", with_missing)):
        reference = predict_proba(network, preprocessor.transform(matrix.astype(np.float64)))
        distance = trust.distance.distance(preprocessor, matrix.astype(np.float64))
        batched = session.run(outputs, {INPUT_NAME: matrix})
        single = [session.run(outputs, {INPUT_NAME: matrix[i : i + 1]}) for i in range(min(16, len(matrix)))]
        single_p = np.concatenate([s[0] for s in single])
        figures[f"parity_max_abs_diff_{name}"] = float(np.max(np.abs(batched[0] - reference)))
        figures[f"parity_max_abs_diff_{name}_batch1"] = float(
            np.max(np.abs(single_p - reference[: len(single_p)]))
        )
        figures[f"parity_max_rel_diff_ood_distance_{name}"] = float(
            np.max(np.abs(batched[1] - distance) / np.maximum(distance, 1.0))
        )
    worst = max(figures.values())
    figures["parity_max_abs_diff"] = max(v for k, v in figures.items() if "_abs_" in k)
    figures["parity_cells"] = float(len(counts))
    if not worst <= tolerance:
        raise ModelError(
            f"export: onnxruntime and PyTorch disagree by {worst:.2e} (> tolerance {tolerance:.0e}) "
            f"on {len(counts)} held-out cells; details: {figures}"
        )
    logger.info(
        "ONNX parity on %d held-out cells: max |diff| = %.2e (tolerance %.0e)", len(counts), worst, tolerance
    )
    return figures
