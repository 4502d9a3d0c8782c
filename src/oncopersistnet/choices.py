"""Every closed set of values a setting or option accepts, listed once.

The config loader checks params.yaml against these, the command line offers them as
argparse ``choices``, and the readers and the model code dispatch on them. This
module imports nothing, so the config and the CLI's ``--help`` never pull in torch.
"""

from __future__ import annotations

from collections.abc import Sequence

#: How a CSV/TSV count table is laid out (``data.orientation``, ``--orientation``); ``auto`` detects it.
ORIENTATIONS = ("auto", "cells_x_genes", "genes_x_cells")

#: Where an .h5ad file keeps its raw counts (``*.counts_source``, ``--counts-source``); besides these,
#: ``layers/<name>`` (or a bare layer name) names one layer, so the set is open and not an argparse choice.
COUNTS_SOURCES = ("auto", "X", "raw")
#: How messages and ``--help`` spell the open part of :data:`COUNTS_SOURCES`.
COUNTS_SOURCE_LAYER = "layers/<name>"

#: The networks ``model.network`` builds (``train.architecture``).
NETWORK_ARCHITECTURES = ("cnn_lstm", "cnn_lstm_attention", "mlp")

#: Every model the comparison can fit (``compare.models``, ``transfer.baselines``), in report order:
#: the networks first, then the baselines (``evaluation.candidates``).
ALL_MODEL_FAMILIES = (
    "cnn_lstm",
    "cnn_lstm_attention",
    "cnn_lstm_permuted",
    "mlp",
    "logistic_regression",
    "linear_svm",
    "hist_gbm",
    "logistic_regression_all_genes",
    "linear_svm_all_genes",
    "marker_score",
    "celltypist",
)

#: How training weighs the classes (``train.class_weight`` for the deployed network,
#: ``compare.class_weight`` for every family of the comparison that takes a weight):
#: ``balanced`` weighs each class by the inverse of its share of the training cells.
CLASS_WEIGHTS = ("balanced", "none")

#: How the comparison picks each fit's cut on its calibrated validation probabilities
#: (``compare.threshold_rule``; :mod:`oncopersistnet.evaluation.posthoc`).
THRESHOLD_RULES = ("youden", "f1", "fixed")

#: How the network's logits are calibrated on the validation split (``train.calibration``).
CALIBRATION_METHODS = ("platt", "temperature", "none")

#: How a transferred network is fine-tuned (``transfer.mode``, ``cross_study.fine_tune_mode``, ``--mode``).
FINE_TUNE_MODES = ("head", "all")

#: ``cross_study.datasets[].source`` values that are not a file path.
CROSS_STUDY_SOURCES = ("pipeline", "simulate")

#: Baselines the cross-study report can refit on pooled PCA features (``cross_study.baseline``).
CROSS_STUDY_BASELINES = ("logistic_regression", "linear_svm", "hist_gbm")


def spoken(values: Sequence[str], *, quote: bool = False) -> str:
    """``a, b or c``: a set of choices as messages and help texts write it."""
    words = [repr(v) if quote else str(v) for v in values]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


#: The counts sources as the readers' messages write them: ``'auto', 'X', 'raw' or 'layers/<name>'``.
COUNTS_SOURCES_HELP = spoken([*COUNTS_SOURCES, COUNTS_SOURCE_LAYER], quote=True)
