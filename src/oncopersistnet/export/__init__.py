"""Export counts -> probability as one ONNX graph, and prove it matches PyTorch."""

from oncopersistnet.export.graph import DeployedGraph
from oncopersistnet.export.onnx_export import INPUT_NAME, OUTPUT_NAME, export_onnx, parity_check

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "DeployedGraph", "export_onnx", "parity_check"]
