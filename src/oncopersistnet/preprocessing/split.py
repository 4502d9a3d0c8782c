"""Split cells into train / validation / test by biological sample.

Cells of one sample share a batch effect. A cell-level split lets a classifier
score well by recognising samples; a sample-level split measures what users need:
how it does on a culture it has never seen. Samples are stratified by their
majority class so that each split holds both classes where the data allow it.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from oncopersistnet.data.labels import PERSISTER
from oncopersistnet.errors import DataValidationError

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_MAX_ATTEMPTS = 200


def _allocate(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """How many of ``n`` samples of one stratum go to test and validation."""
    n_test = max(1, round(n * test_fraction)) if n >= 2 else 0
    n_val = max(1, round(n * val_fraction)) if n >= 3 else 0
    while n_test + n_val >= n and n_val > 0:
        n_val -= 1
    return n_test, n_val


def split_by_sample(
    samples: pd.Series | np.ndarray,
    labels: pd.Series | np.ndarray,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> np.ndarray:
    """Return the split name ("train", "val", "test") of every cell.

    No sample appears in two splits; every split contains both classes, or a
    :class:`DataValidationError` says why that is impossible.
    """
    frame = pd.DataFrame({"sample": np.asarray(samples, dtype=str), "label": np.asarray(labels, dtype=str)})
    per_sample = frame.assign(persister=frame["label"] == PERSISTER).groupby("sample")["persister"].mean()
    strata = {
        "persister-majority": sorted(per_sample.index[per_sample >= 0.5]),
        "non-persister-majority": sorted(per_sample.index[per_sample < 0.5]),
    }
    if len(per_sample) < 3:
        raise DataValidationError(
            f"split: {len(per_sample)} samples found; train, validation and test need at least 3"
        )
    rng = np.random.default_rng(seed)
    for _ in range(_MAX_ATTEMPTS):
        assignment: dict[str, str] = {}
        for members in strata.values():
            order = list(rng.permutation(members))
            n_test, n_val = _allocate(len(order), val_fraction, test_fraction)
            for i, sample in enumerate(order):
                assignment[sample] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
        split = frame["sample"].map(assignment).to_numpy()
        classes = frame.groupby(split)["label"].nunique()
        if set(classes.index) == set(SPLITS) and (classes == 2).all():
            for name in SPLITS:
                chosen = sorted(s for s, where in assignment.items() if where == name)
                logger.info(
                    "%s: %d cells from samples %s", name, int((split == name).sum()), ", ".join(chosen)
                )
            return split
    raise DataValidationError(
        "split: no assignment of samples to train/val/test gives every split both classes; "
        f"samples per majority class: { {k: len(v) for k, v in strata.items()} }"
    )
