"""Metrics, baselines and figures on held-out samples."""

from oncopersistnet.evaluation.baselines import fit_logistic_baseline
from oncopersistnet.evaluation.metrics import METRIC_NAMES, classification_metrics, curve_tables

__all__ = ["METRIC_NAMES", "classification_metrics", "curve_tables", "fit_logistic_baseline"]
