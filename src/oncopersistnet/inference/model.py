"""An exported persister model run by onnxruntime, with the metadata it carries."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from oncopersistnet.errors import ModelError
from oncopersistnet.inference.conformal import ConformalCalibration

logger = logging.getLogger(__name__)

INPUT_NAME = "counts"
OUTPUT_NAME = "persister_probability"
DISTANCE_NAME = "ood_distance"
SESSION_BATCH = 1024  # cells per onnxruntime call


def gene_list_digest(genes: list[str]) -> str:
    """sha256 of the ordered gene list: what the registry records so a swapped file is noticed."""
    return hashlib.sha256("\n".join(genes).encode()).hexdigest()


class OnnxPersisterModel:
    """One onnxruntime session over a model written by the export stage.

    ``genes`` and provenance (data hash, params hash, threshold) are read from the
    ONNX file's ``metadata_props``; a file without them was not made here.
    """

    def __init__(self, path: str | Path, threads: int | None = None, source: str | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.source = source or str(path)
        # The registry version a store URI was pinned to when loaded (``models:/NAME/VERSION``), set by
        # ``registry.resolve.load_model``: an alias may move later, this names what is loaded.
        self.pinned_uri: str | None = None
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{self.path}: not a loadable ONNX model ({exc.__class__.__name__})") from exc
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        if "genes" not in self.metadata:
            raise ModelError(
                f"{self.path}: ONNX model has no 'genes' metadata; was it exported by oncopersistnet?"
            )
        self.genes: list[str] = json.loads(self.metadata["genes"])
        # Genes the graph reads after gene selection, and the samples it was fitted on
        # (train + validation); older or foreign exports may lack them.
        self.selected_genes: list[str] = json.loads(self.metadata.get("selected_genes", "null")) or list(
            self.genes
        )
        self.fit_samples: list[str] = json.loads(self.metadata.get("fit_samples", "[]"))
        # Per model gene: does the graph read it after selection? (the no-call figures count them)
        self.selected_mask: np.ndarray = np.isin(np.asarray(self.genes, dtype=str), self.selected_genes)
        # What the model says about its own calls (exports before these existed lack them: None).
        self.has_distance = DISTANCE_NAME in [o.name for o in self.session.get_outputs()]
        ood = json.loads(self.metadata.get("ood", "null")) if self.has_distance else None
        self.ood_threshold: float | None = float(ood["threshold"]) if ood else None
        scores = json.loads(self.metadata.get("conformal_scores", "null"))
        self.conformal: ConformalCalibration | None = (
            ConformalCalibration.from_metadata(scores) if scores is not None else None
        )
        self._warn_if_old()
        inputs = self.session.get_inputs()
        if [i.name for i in inputs] != [INPUT_NAME] or inputs[0].shape[1] != len(self.genes):
            raise ModelError(
                f"{self.path}: input signature {[(i.name, i.shape) for i in inputs]} does not match "
                f"its gene list of {len(self.genes)} genes"
            )

    def _warn_if_old(self) -> None:
        """Once per load: what a model exported before conformal scores and the OOD output cannot do."""
        if self.conformal is None:
            logger.warning(
                "%s carries no conformal scores (exported before they existed): cells are labelled at its "
                "threshold, with no uncertain class; re-export it for coverage-guaranteed sets",
                self.source,
            )
        if self.ood_threshold is None:
            logger.warning("%s has no out-of-distribution output: no cell will be flagged", self.source)

    @property
    def threshold(self) -> float:
        """Decision threshold recorded at export (0.5 if absent)."""
        return float(self.metadata.get("threshold", 0.5))

    def info(self) -> dict[str, Any]:
        """Metadata without the (long) gene list, for logs and summaries."""
        long = ("genes", "selected_genes", "fit_samples", "conformal_scores")
        return {k: v for k, v in self.metadata.items() if k not in long} | {
            "n_genes": len(self.genes),
            "n_selected_genes": len(self.selected_genes),
        }

    def predict_proba(self, counts: np.ndarray) -> np.ndarray:
        """Probabilities for ``cells x model genes`` float32 counts (NaN = missing gene)."""
        return self.predict(counts)[0]

    def predict(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probability, out-of-distribution distance) per cell; the distance is NaN for a model
        exported without one."""
        counts = np.ascontiguousarray(counts, dtype=np.float32)
        if counts.ndim != 2 or counts.shape[1] != len(self.genes):
            raise ModelError(
                f"expected a 2-D array with {len(self.genes)} gene columns, got shape {counts.shape}"
            )
        if counts.shape[0] == 0:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.float32)
        outputs = [OUTPUT_NAME, DISTANCE_NAME] if self.has_distance else [OUTPUT_NAME]
        # Cells are scored independently; slices keep onnxruntime's working memory (it grows with
        # the batch and its arena keeps the peak) small, and ~1k-cell batches are its fastest.
        parts = [
            self.session.run(outputs, {INPUT_NAME: counts[start : start + SESSION_BATCH]})
            for start in range(0, counts.shape[0], SESSION_BATCH)
        ]
        probability = np.concatenate([part[0] for part in parts])
        if not self.has_distance:
            return probability, np.full(probability.shape, np.nan, dtype=np.float32)
        return probability, np.concatenate([part[1] for part in parts])
