"""What an exported ONNX file says about itself (``metadata_props``).

The export stage and ``transfer`` both write it, so deployment (the served
threshold, the gene selection) and the promotion gate (the samples a model was
fitted on, never used to judge it) read the same keys whoever exported the model.
"""

from __future__ import annotations

from oncopersistnet.model import PersisterNetwork
from oncopersistnet.preprocessing import CellPreprocessor


def model_metadata(
    preprocessor: CellPreprocessor,
    network: PersisterNetwork,
    *,
    model_name: str,
    threshold: float,
    calibration: str,
    fit_samples: list[str],
    provenance: dict[str, str],
) -> dict[str, object]:
    """What an exported ONNX file carries about itself (``metadata_props``)."""
    return {
        "model_name": model_name,
        "threshold": threshold,
        "architecture": network.architecture,
        "calibration": {
            "method": calibration,
            "scale": float(network.calibration[0]),
            "shift": float(network.calibration[1]),
        },
        **provenance,
        "n_components": preprocessor.n_features_out,
        "n_genes_selected": int(preprocessor.selected_.size),
        "selected_genes": [str(g) for g in preprocessor.genes_[preprocessor.selected_]],
        # Samples the model was fitted or early-stopped on: a fair comparison avoids them.
        "fit_samples": sorted(fit_samples),
    }
