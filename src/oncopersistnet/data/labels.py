"""The one label mapping: a study's own values -> persister / non-persister -> 1 / 0, and back.

Studies name their classes their own way (``treated_day14``, ``drug_treated``,
``untreated``); params.yaml or the command line says which values mean what. Every
place that reads labels (ingest, the transfer and cross-study studies, ``explain``)
and every place that turns them into a target (1 = persister) or back into words
goes through this module, so the three spellings cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import pandas as pd

PERSISTER = "persister"
NON_PERSISTER = "non-persister"
#: Class names in target order: ``LABELS[y]`` is the name of target ``y``.
LABELS = (NON_PERSISTER, PERSISTER)


class LabelScheme(Protocol):
    """Where a labelled dataset keeps its labels and samples, and which values mean which class.

    ``DataConfig``, ``TransferConfig`` and ``CrossStudyDataset`` all have these attributes.
    """

    label_key: str
    sample_key: str
    persister_values: Sequence[str]
    non_persister_values: Sequence[str]


def canonical_labels(
    raw: pd.Series, persister_values: Sequence[str], non_persister_values: Sequence[str]
) -> pd.Series:
    """:data:`PERSISTER` / :data:`NON_PERSISTER` per cell, NaN for a value in neither list.

    Values are compared as strings. A value listed in both is non-persister (the
    configuration checks refuse such lists; a contradictory command line is not
    guessed at more cleverly).
    """
    mapping = dict.fromkeys(persister_values, PERSISTER)
    mapping.update(dict.fromkeys(non_persister_values, NON_PERSISTER))
    return raw.astype(str).map(mapping)


def binary_labels(labels: pd.Series | np.ndarray) -> np.ndarray:
    """1 for :data:`PERSISTER`, 0 otherwise (int64): the training target."""
    return (np.asarray(labels, dtype=str) == PERSISTER).astype(np.int64)


def label_names(is_persister: np.ndarray) -> np.ndarray:
    """:data:`PERSISTER` where ``is_persister`` is true (or 1), :data:`NON_PERSISTER` elsewhere."""
    return np.where(np.asarray(is_persister) == 1, PERSISTER, NON_PERSISTER)
