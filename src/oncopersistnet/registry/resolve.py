"""Turn a model reference into a loaded, deployable :class:`OnnxPersisterModel`.

A reference is a registry URI (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``),
a run URI (``runs:/<id>/model``), an ``.onnx`` file, or an MLflow model folder
that contains one. The MLflow store is the one the entry point (CLI, stage,
server) pointed MLflow at; loading never changes it.

A model from MLflow must still be the model that was registered: its ONNX input
must have the width of the signature logged with it (``MLmodel``), and its gene
list the digest recorded on the version (tag ``genes_sha256``). An artifact
swapped or edited in the store after registration is refused, not served.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import yaml

from oncopersistnet.errors import ModelError
from oncopersistnet.inference.model import OnnxPersisterModel, gene_list_digest
from oncopersistnet.registry.aliases import resolve_version
from oncopersistnet.registry.uri import is_model_uri, is_store_uri, parse_model_uri, version_uri
from oncopersistnet.tracking import disable_telemetry

logger = logging.getLogger(__name__)

GENES_DIGEST_TAG = "genes_sha256"


def _pinned(reference: str) -> tuple[str, dict[str, str]]:
    """``models:/NAME@ALIAS`` as ``models:/NAME/VERSION`` plus the version's tags.

    An alias may move while we load: the download and the integrity checks must see one version.
    """
    if not is_model_uri(reference):
        return reference, {}
    uri = parse_model_uri(reference)
    if uri.alias is None and not uri.pinned:  # models:/NAME/latest or a legacy stage: MLflow resolves those
        return reference, {}
    version = resolve_version(uri.name, uri.reference)
    return version_uri(uri.name, version.version), dict(version.tags)


def check_registration(
    model: OnnxPersisterModel, folder: Path, *, tags: dict[str, str], reference: str
) -> None:
    """Refuse a downloaded model whose input or genes differ from what was registered."""
    mlmodel = folder / "MLmodel"
    if mlmodel.exists():
        try:
            inputs = json.loads(
                (yaml.safe_load(mlmodel.read_text()).get("signature") or {}).get("inputs") or "[]"
            )
            width = inputs[0]["tensor-spec"]["shape"][-1] if inputs else None
        except (yaml.YAMLError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ModelError(
                f"{reference}: its MLmodel signature cannot be read ({exc.__class__.__name__})"
            ) from exc
        if width is not None and width != len(model.genes):
            raise ModelError(
                f"{reference}: registered with an input signature of {width} genes, but its ONNX graph reads "
                f"{len(model.genes)}; the artifact was changed after registration, refusing it"
            )
    recorded = tags.get(GENES_DIGEST_TAG)
    if recorded and recorded != gene_list_digest(model.genes):
        raise ModelError(
            f"{reference}: its gene list differs from the one registered (tag {GENES_DIGEST_TAG}); "
            "the artifact was changed after registration, refusing it"
        )


def _find_onnx(folder: Path) -> Path:
    found = sorted(folder.rglob("*.onnx"))
    if not found:
        raise ModelError(f"{folder}: no .onnx file inside")
    return found[0]


def load_model(reference: str, *, threads: int | None = None) -> OnnxPersisterModel:
    """Load a model by registry/run URI (in the current MLflow store) or by path, with onnxruntime only."""
    if is_store_uri(reference):
        disable_telemetry()
        import mlflow
        from mlflow.exceptions import MlflowException

        where = mlflow.get_tracking_uri()
        # onnxruntime reads the whole file when the session is created, so the
        # downloaded copy can go as soon as the model is loaded.
        with tempfile.TemporaryDirectory(prefix="oncopersistnet-model-") as target:
            try:
                pinned, tags = _pinned(reference)
                local = mlflow.artifacts.download_artifacts(artifact_uri=pinned, dst_path=target)
            except (MlflowException, ModelError) as exc:
                first_line = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
                raise ModelError(
                    f"{reference}: cannot be resolved in the MLflow store {where} ({first_line}). "
                    "Run the pipeline (make run); if mlruns/ was deleted, rebuild it with "
                    "`dvc repro --force`."
                ) from exc
            path = _find_onnx(Path(local))
            model = OnnxPersisterModel(path, threads=threads, source=reference)
            check_registration(model, path.parent, tags=tags, reference=reference)
            model.pinned_uri = pinned
            logger.info("resolved %s as %s (%s)", reference, pinned, where)
            return model
    path = Path(reference)
    if not path.exists():
        raise ModelError(f"{reference}: no such model file, and not a models:/ or runs:/ URI")
    if path.is_dir():
        path = _find_onnx(path)
    return OnnxPersisterModel(path, threads=threads, source=reference)
