"""Metrics, the model comparison (folds, candidates, summaries, reports) and figures on held-out samples."""

from oncopersistnet.evaluation.metrics import METRIC_NAMES, classification_metrics, curve_tables

__all__ = ["METRIC_NAMES", "classification_metrics", "curve_tables"]
