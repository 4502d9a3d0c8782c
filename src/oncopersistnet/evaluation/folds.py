"""The splits every model in the comparison is trained and tested on.

A :class:`Fold` holds, for one assignment of samples to train / validation /
test, both views of the same cells: raw counts (for models that read genes:
the marker score, CellTypist) and PCA features from a preprocessor fitted on
that fold's training cells only (for the rest). Every model of a comparison sees
the same folds, so their figures differ by the model alone.

Two ways to get folds: the pipeline's own split (``compare.cv_folds: 0``; the
features are then identical to the preprocess stage's), or grouped k-fold by
sample (``cv_folds: k``): each sample is tested exactly once, a validation set
is drawn by sample from the rest, and the preprocessor is refitted per fold. Every
fold's test, validation and training parts hold both classes (or the folds are refused):
a test part of one class has no ROC-AUC, and a validation part of one class cannot
calibrate. With the shipped 4 + 4 samples and ``k = 4``, each fold tests one sample per class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.model_selection import StratifiedGroupKFold

from oncopersistnet.config import Params, PreprocessConfig
from oncopersistnet.data.cells import Cells
from oncopersistnet.data.hdf5 import read_h5ad
from oncopersistnet.errors import DataValidationError
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.preprocessing import SPLITS, CellPreprocessor, build_preprocessor
from oncopersistnet.preprocessing.outputs import read_split_table


@dataclass(frozen=True)
class Fold:
    """One train / validation / test assignment, as counts and as train-fitted PCA features.

    ``counts`` holds each split's raw count matrix over ``genes`` (empty where only
    features exist, as in the cross-study folds); ``features`` each split's cells with
    PCA features as ``X``.
    """

    name: str
    genes: np.ndarray
    counts: dict[str, sparse.csr_matrix]
    features: dict[str, Cells]
    preprocessor: CellPreprocessor

    @property
    def test_samples(self) -> list[str]:
        return sorted(set(self.features["test"].samples))


def build_fold(name: str, cells: Cells, split: np.ndarray, *, config: PreprocessConfig) -> Fold:
    """Fit the preprocessor on the fold's training cells (raw counts), then transform every split."""
    cells = cells.with_X(sparse.csr_matrix(cells.X), cells.genes)
    missing = [s for s in SPLITS if not (split == s).any()]
    if missing:
        raise DataValidationError(f"fold {name}: no cells in split(s) {', '.join(missing)}")
    parts = {s: cells.subset(split == s) for s in SPLITS}
    preprocessor = build_preprocessor(config).fit(parts["train"].X, cells.genes)
    return Fold(
        name=name,
        genes=cells.genes,
        counts={s: part.X for s, part in parts.items()},
        features={s: part.with_X(preprocessor.transform(part.X)) for s, part in parts.items()},
        preprocessor=preprocessor,
    )


def _sample_classes(samples: np.ndarray, y: np.ndarray) -> dict[str, int]:
    """Majority class (1 = persister) of every sample."""
    out: dict[str, int] = {}
    for sample in np.unique(samples):
        out[str(sample)] = int(y[samples == sample].mean() >= 0.5)
    return out


def grouped_splits(
    samples: np.ndarray, y: np.ndarray, k: int, *, val_fraction: float, seed: int
) -> list[np.ndarray]:
    """``k`` split-name arrays: each sample is in test exactly once, never in two splits of a fold.

    Test folds are stratified by the samples' majority class; the validation
    samples of a fold are one stratified group-fold of the remaining samples.
    """
    samples = np.asarray(samples, dtype=str)
    classes = _sample_classes(samples, y)
    per_class = [sum(1 for c in classes.values() if c == label) for label in (0, 1)]
    # every test fold needs one sample of each class, and what is left, two (train + validation)
    if min(per_class) < k or min(n - math.ceil(n / k) for n in per_class) < 2:
        need = max(k, next(n for n in range(k, 10 * k) if n - math.ceil(n / k) >= 2))
        raise DataValidationError(
            f"compare.cv_folds={k}: grouped k-fold needs at least {need} samples of each majority class "
            f"(both classes in every test fold, and in train and validation); found {per_class[0]} "
            f"non-persister and {per_class[1]} persister samples; "
            "use compare.cv_folds: 0 (the pipeline's split)"
        )
    sample_names = np.array(sorted(classes))
    sample_y = np.array([classes[s] for s in sample_names])
    outer = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    splits = []
    for fold, (rest, test) in enumerate(outer.split(sample_names, sample_y, groups=sample_names)):
        rest_y = sample_y[rest]
        n_inner = max(2, min(round(1 / max(val_fraction, 1e-9)), int(np.bincount(rest_y, minlength=2).min())))
        inner = StratifiedGroupKFold(n_splits=n_inner, shuffle=True, random_state=seed + fold)
        _, val = next(inner.split(sample_names[rest], rest_y, groups=sample_names[rest]))
        assignment = dict.fromkeys(sample_names[rest], "train")
        assignment.update(dict.fromkeys(sample_names[rest][val], "val"))
        assignment.update(dict.fromkeys(sample_names[test], "test"))
        split = np.array([assignment[s] for s in samples])
        for name in SPLITS:
            if len(set(y[split == name])) < 2:
                raise DataValidationError(
                    f"compare.cv_folds={k}: fold {fold + 1} has one class only in its {name} split; "
                    "use fewer folds"
                )
        splits.append(split)
    return splits


def pipeline_folds(params: Params, paths: ProjectPaths) -> list[Fold]:
    """The pipeline's split (``compare.cv_folds: 0``) or grouped k-fold by sample, as :class:`Fold` objects.

    Reads the validated cells and, for the pipeline's split, the preprocess stage's split table:
    the compare stage and ``benchmarks/bench_compare.py`` fit on exactly these folds.
    """
    adata = read_h5ad(paths.validated)
    cells = Cells.from_anndata(adata)
    if params.compare.cv_folds == 0:
        assignments = {"holdout": read_split_table(paths, adata.obs_names)}
    else:
        splits = grouped_splits(
            cells.samples,
            cells.y,
            params.compare.cv_folds,
            val_fraction=params.split.val_fraction,
            seed=params.split.seed,
        )
        assignments = {f"fold{i + 1}": split for i, split in enumerate(splits)}
    return [build_fold(name, cells, split, config=params.preprocess) for name, split in assignments.items()]
