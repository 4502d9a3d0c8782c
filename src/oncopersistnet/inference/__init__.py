"""Inference with onnxruntime only: resolve a registered model, align genes, predict.

Nothing on this path imports torch (a test proves it), so a deployment image
needs onnxruntime, numpy and the readers, not a deep-learning framework.
"""

from oncopersistnet.inference.align import GeneMatch, match_genes
from oncopersistnet.inference.model import OnnxPersisterModel
from oncopersistnet.inference.predict import predict_file
from oncopersistnet.inference.resolve import DEFAULT_MODEL_URI, load_model

__all__ = [
    "DEFAULT_MODEL_URI",
    "GeneMatch",
    "OnnxPersisterModel",
    "load_model",
    "match_genes",
    "predict_file",
]
