"""Turn a model reference into a loaded :class:`OnnxPersisterModel`.

A reference is a registry URI (``models:/oncopersistnet@champion``,
``models:/oncopersistnet/3``), a run URI (``runs:/<id>/model``), an ``.onnx``
file, or an MLflow model folder that contains one.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from oncopersistnet.errors import ModelError
from oncopersistnet.inference.model import OnnxPersisterModel

logger = logging.getLogger(__name__)

DEFAULT_MODEL_URI = "models:/oncopersistnet@champion"


def _find_onnx(folder: Path) -> Path:
    found = sorted(folder.rglob("*.onnx"))
    if not found:
        raise ModelError(f"{folder}: no .onnx file inside")
    return found[0]


def load_model(reference: str = DEFAULT_MODEL_URI, threads: int | None = None, tracking_uri: str | None = None) -> OnnxPersisterModel:
    """Load a model by registry/run URI or by path, with onnxruntime only."""
    if reference.startswith(("models:/", "runs:/")):
        from oncopersistnet.tracking import disable_telemetry

        disable_telemetry()
        import mlflow
        from mlflow.exceptions import MlflowException

        if tracking_uri:
            mlflow.set_tracking_uri(tracking_uri)
        where = mlflow.get_tracking_uri()
        # onnxruntime reads the whole file when the session is created, so the
        # downloaded copy can go as soon as the model is loaded.
        with tempfile.TemporaryDirectory(prefix="oncopersistnet-model-") as target:
            try:
                local = mlflow.artifacts.download_artifacts(artifact_uri=reference, dst_path=target)
            except MlflowException as exc:
                first_line = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
                raise ModelError(
                    f"{reference}: cannot be resolved in the MLflow store {where} ({first_line}). "
                    "Run the pipeline (make run); if mlruns/ was deleted, rebuild it with `dvc repro --force`."
                ) from exc
            path = _find_onnx(Path(local))
            logger.info("resolved %s (%s)", reference, where)
            return OnnxPersisterModel(path, threads=threads, source=reference)
    path = Path(reference)
    if not path.exists():
        raise ModelError(f"{reference}: no such model file, and not a models:/ or runs:/ URI")
    if path.is_dir():
        path = _find_onnx(path)
    return OnnxPersisterModel(path, threads=threads, source=reference)
