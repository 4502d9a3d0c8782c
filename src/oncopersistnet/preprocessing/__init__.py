"""Split cells by sample and turn raw counts into PCA features (train-fitted only)."""

from oncopersistnet.preprocessing.normalize import log_normalize
from oncopersistnet.preprocessing.split import SPLITS, split_by_sample
from oncopersistnet.preprocessing.transformer import CellPreprocessor, build_preprocessor

__all__ = [
    "SPLITS",
    "CellPreprocessor",
    "log_normalize",
    "build_preprocessor",
    "split_by_sample",
]
