"""Export counts -> probability (and OOD distance) as one ONNX graph, and prove it matches PyTorch."""

from oncopersistnet.export.graph import DeployedGraph, TrustedGraph
from oncopersistnet.export.onnx_export import INPUT_NAME, OUTPUT_NAME, export_onnx, parity_check
from oncopersistnet.export.trust import TrustCalibration, fit_trust

__all__ = [
    "INPUT_NAME",
    "OUTPUT_NAME",
    "DeployedGraph",
    "TrustCalibration",
    "TrustedGraph",
    "export_onnx",
    "fit_trust",
    "parity_check",
]
