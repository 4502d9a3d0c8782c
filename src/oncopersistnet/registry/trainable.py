"""The trainable form of a model: its PyTorch network and fitted preprocessor.

Deployment needs only the ONNX graph, but explaining a call (gradients) and
fine-tuning on a new dataset need the network's weights and the preprocessing
statistics. The register stage logs both next to the ONNX model, in the training
run's artifacts under ``pytorch/`` (``model.pt``: tensors only, loaded with
``weights_only``; ``preprocessor.npz``: arrays, no pickle), so a registry
reference resolves to them through the version's run.

A reference is a registry URI (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``)
or a local folder holding ``model.pt`` and ``preprocessor.npz`` (such as the
pipeline's ``models/``).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from oncopersistnet.errors import ModelError
from oncopersistnet.model import PersisterNetwork, load_checkpoint
from oncopersistnet.preprocessing import CellPreprocessor
from oncopersistnet.registry.aliases import resolve_version
from oncopersistnet.registry.uri import is_model_uri, parse_model_uri, version_uri
from oncopersistnet.tracking import disable_telemetry

logger = logging.getLogger(__name__)

ARTIFACT_DIR = "pytorch"
CHECKPOINT_NAME = "model.pt"
PREPROCESSOR_NAME = "preprocessor.npz"


@dataclass
class TrainableModel:
    """A fitted preprocessor and network, and where they came from."""

    preprocessor: CellPreprocessor
    network: PersisterNetwork
    source: str
    registered_name: str | None = None
    registered_version: str | None = None
    run_id: str | None = None

    @property
    def parent_uri(self) -> str:
        """The most specific reference to this model: ``models:/NAME/VERSION`` when registered."""
        if self.registered_name and self.registered_version:
            return version_uri(self.registered_name, self.registered_version)
        return self.source


def _load_folder(folder: Path, source: str) -> TrainableModel:
    checkpoint, preprocessor = folder / CHECKPOINT_NAME, folder / PREPROCESSOR_NAME
    missing = [p.name for p in (checkpoint, preprocessor) if not p.exists()]
    if missing:
        raise ModelError(
            f"{source}: {', '.join(missing)} missing "
            f"(a trainable model needs {CHECKPOINT_NAME} and {PREPROCESSOR_NAME})"
        )
    return TrainableModel(CellPreprocessor.load(preprocessor), load_checkpoint(checkpoint), source)


def load_trainable(reference: str) -> TrainableModel:
    """Network + preprocessor of a registered version (in the current MLflow store), or of a local folder."""
    if not is_model_uri(reference):
        folder = Path(reference)
        if not folder.is_dir():
            raise ModelError(
                f"{reference}: not a folder with {CHECKPOINT_NAME} and {PREPROCESSOR_NAME}, "
                "and not a models:/ URI"
            )
        return _load_folder(folder, reference)

    disable_telemetry()
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = parse_model_uri(reference)
    version = resolve_version(uri.name, uri.reference)
    with tempfile.TemporaryDirectory(prefix="oncopersistnet-trainable-") as target:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=version.run_id, artifact_path=ARTIFACT_DIR, dst_path=target
            )
        except (MlflowException, OSError) as exc:
            raise ModelError(
                f"{reference}: version {version.version} has no {ARTIFACT_DIR}/ artifacts "
                f"in run {version.run_id} "
                "(registered before they were logged?); rerun `dvc repro -f -s register`"
            ) from exc
        model = _load_folder(Path(local), reference)
    model.registered_name, model.registered_version = uri.name, str(version.version)
    model.run_id = version.run_id
    logger.info(
        "loaded the trainable form of %s (version %s, run %s)", reference, version.version, version.run_id
    )
    return model
