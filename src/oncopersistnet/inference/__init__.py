"""Inference with onnxruntime only: align genes, predict (a registered model is loaded by
:func:`oncopersistnet.registry.resolve.load_model`).

Nothing on this path imports torch (a test proves it), so a deployment image
needs onnxruntime, numpy and the readers, not a deep-learning framework.
"""

from oncopersistnet.inference.align import GeneMatch, match_genes
from oncopersistnet.inference.model import OnnxPersisterModel
from oncopersistnet.inference.predict import predict_file

__all__ = [
    "GeneMatch",
    "OnnxPersisterModel",
    "match_genes",
    "predict_file",
]
