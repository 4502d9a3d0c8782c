"""``CellPreprocessor``: raw counts -> PCA features, fitted on training cells only.

Steps, in order: library-size normalisation and log1p, selection of the most
variable genes, mean imputation, min-max scaling, PCA. It follows scikit-learn's
estimator contract: hyper-parameters in ``__init__``, learned state with a
trailing underscore set by :meth:`fit`, a pure :meth:`transform`. Its state is
plain arrays, saved as ``.npz`` (no pickle), and the ONNX export rebuilds the same
arithmetic from these arrays, so the deployed graph and this class cannot drift.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.decomposition import PCA

from oncopersistnet.atomic import write_npz
from oncopersistnet.config import PreprocessConfig
from oncopersistnet.errors import InputDataError, ModelError
from oncopersistnet.preprocessing.normalize import gene_shares, log_normalize

logger = logging.getLogger(__name__)

_STATE = (
    "selected_",
    "impute_mean_",
    "min_",
    "range_",
    "pca_mean_",
    "components_",
    "explained_variance_ratio_",
)


def _column_mean_var(matrix: sparse.csr_matrix | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and (population) variance without densifying a sparse matrix."""
    if sparse.issparse(matrix):
        mean = np.asarray(matrix.mean(axis=0)).ravel()
        mean_sq = np.asarray(matrix.multiply(matrix).mean(axis=0)).ravel()
        return mean, np.maximum(mean_sq - mean**2, 0.0)
    return np.nanmean(matrix, axis=0), np.nanvar(matrix, axis=0)


class CellPreprocessor:
    """Normalise, select genes, impute, min-max scale and project onto PCA components.

    Parameters
    ----------
    target_sum: counts per cell after library-size normalisation.
    n_top_genes: number of most variable genes (on log-normalised training data) kept.
    min_cells_fraction: a gene must be detected in at least this fraction of
        training cells to be eligible (variance of near-empty genes is noise).
    n_components: PCA components; capped by the number of cells and genes.
    seed: kept for API symmetry with randomised solvers; the full SVD is deterministic.
    """

    def __init__(
        self,
        *,
        target_sum: float = 1e4,
        n_top_genes: int = 500,
        min_cells_fraction: float = 0.01,
        n_components: int = 50,
        seed: int = 0,
    ) -> None:
        self.target_sum = target_sum
        self.n_top_genes = n_top_genes
        self.min_cells_fraction = min_cells_fraction
        self.n_components = n_components
        self.seed = seed

    # ------------------------------------------------------------------ fitting
    def fit(self, counts: sparse.spmatrix | np.ndarray, genes: Sequence[str]) -> CellPreprocessor:
        """Learn every statistic from ``counts`` (training cells x ``genes``) only."""
        genes = np.asarray(genes, dtype=str)
        if counts.shape[1] != genes.size:
            raise InputDataError(f"fit: {counts.shape[1]} matrix columns but {genes.size} gene names")
        if counts.shape[0] < 2:
            raise InputDataError("fit: at least 2 training cells are needed")
        self.genes_ = genes
        self.gene_share_ = gene_shares(counts)
        logged = log_normalize(counts, self.target_sum, self.gene_share_)
        if sparse.issparse(logged):
            detected = np.asarray((logged > 0).mean(axis=0)).ravel()
        else:
            detected = np.nanmean(np.nan_to_num(logged, nan=0.0) > 0, axis=0)
        _, variance = _column_mean_var(logged)
        eligible = np.flatnonzero(detected >= self.min_cells_fraction)
        if eligible.size == 0:
            raise InputDataError(
                f"fit: no gene is detected in >= {self.min_cells_fraction:.1%} of training cells"
            )
        n_keep = min(self.n_top_genes, eligible.size)
        order = np.argsort(-variance[eligible], kind="stable")[:n_keep]
        self.selected_ = np.sort(eligible[order])
        selected = self._dense_selected(logged)

        self.impute_mean_ = np.nanmean(selected, axis=0)
        self.impute_mean_ = np.where(np.isnan(self.impute_mean_), 0.0, self.impute_mean_)
        selected = np.where(np.isnan(selected), self.impute_mean_, selected)
        self.min_ = selected.min(axis=0)
        data_range = selected.max(axis=0) - self.min_
        self.range_ = np.where(data_range > 0, data_range, 1.0)
        scaled = (selected - self.min_) / self.range_

        n_components = min(self.n_components, scaled.shape[0] - 1, scaled.shape[1])
        pca = PCA(n_components=n_components, svd_solver="full", random_state=self.seed)
        pca.fit(scaled)
        self.pca_mean_ = pca.mean_
        self.components_ = pca.components_
        self.explained_variance_ratio_ = pca.explained_variance_ratio_
        logger.info(
            "preprocessor fitted on %d cells: %d of %d genes selected, %d PCA components "
            "explaining %.1f%% of variance",
            counts.shape[0],
            self.selected_.size,
            genes.size,
            n_components,
            100 * self.explained_variance_ratio_.sum(),
        )
        return self

    def _dense_selected(self, logged: sparse.csr_matrix | np.ndarray) -> np.ndarray:
        if sparse.issparse(logged):
            return logged[:, self.selected_].toarray()
        return np.asarray(logged)[:, self.selected_]

    def refit_scaling(self, counts: sparse.spmatrix | np.ndarray) -> CellPreprocessor:
        """A copy whose imputation means, min-max range and PCA centre are refitted on ``counts``.

        For transfer to another dataset: the selected genes and the PCA axes (what
        the network's inputs mean) stay, while the statistics that absorb a
        study's depth and batch offsets follow the new training cells. A gene the
        new data lacks everywhere keeps its old mean. ``counts``: new training
        cells over ``genes_``, NaN for missing genes.
        """
        self._check_fitted()
        if counts.shape[0] < 2:
            raise InputDataError("refit_scaling: at least 2 training cells are needed")
        refitted = copy.deepcopy(self)
        selected = self._dense_selected(log_normalize(counts, self.target_sum, self.gene_share_))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: genes the new data lacks
            new_mean = np.nanmean(selected, axis=0)
        refitted.impute_mean_ = np.where(np.isnan(new_mean), self.impute_mean_, new_mean)
        selected = np.where(np.isnan(selected), refitted.impute_mean_, selected)
        refitted.min_ = selected.min(axis=0)
        data_range = selected.max(axis=0) - refitted.min_
        refitted.range_ = np.where(data_range > 0, data_range, self.range_)
        refitted.pca_mean_ = ((selected - refitted.min_) / refitted.range_).mean(axis=0)
        return refitted

    # ------------------------------------------------------------- transforming
    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise ModelError("CellPreprocessor is not fitted: call fit() or load() first")

    @property
    def n_features_out(self) -> int:
        """Number of PCA components the network reads."""
        self._check_fitted()
        return int(self.components_.shape[0])

    def transform(self, counts: sparse.spmatrix | np.ndarray) -> np.ndarray:
        """Raw counts over ``genes_`` (NaN = gene missing) -> float32 PCA features."""
        centred, _ = self.centred(counts)
        return (centred @ self.components_.T).astype(np.float32)

    def centred(self, counts: sparse.spmatrix | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The selected genes imputed, min-max scaled and centred on the PCA mean (what PCA projects),
        and which of them the input measured (``False`` = NaN, imputed).

        :meth:`transform` projects the first; the out-of-distribution distance also reads the part
        PCA discards, on the measured genes only (an imputed gene sits at the training mean and
        would make a cell look more typical than it is).
        """
        self._check_fitted()
        if counts.shape[1] != self.genes_.size:
            raise InputDataError(
                f"transform: input has {counts.shape[1]} genes, the preprocessor expects {self.genes_.size}"
            )
        selected = self._dense_selected(log_normalize(counts, self.target_sum, self.gene_share_))
        measured = ~np.isnan(selected)
        selected = np.where(measured, selected, self.impute_mean_)
        scaled = (selected - self.min_) / self.range_
        return scaled - self.pca_mean_, measured

    # --------------------------------------------------------------- persisting
    def save(self, path: str | Path) -> None:
        """Write the fitted state as ``.npz`` (arrays + JSON hyper-parameters); no pickle."""
        self._check_fitted()
        meta = json.dumps(
            {
                "target_sum": self.target_sum,
                "n_top_genes": self.n_top_genes,
                "min_cells_fraction": self.min_cells_fraction,
                "n_components": self.n_components,
                "seed": self.seed,
            }
        )
        arrays = {name: getattr(self, name) for name in _STATE}
        if self.gene_share_ is not None:
            arrays["gene_share_"] = self.gene_share_
        write_npz(path, {"genes_": self.genes_.astype(str), "params": np.array(meta)} | arrays)

    @classmethod
    def load(cls, path: str | Path) -> CellPreprocessor:
        """Read a preprocessor written by :meth:`save`."""
        try:
            with np.load(path, allow_pickle=False) as data:
                obj = cls(**json.loads(str(data["params"])))
                obj.genes_ = data["genes_"]
                for name in _STATE:
                    setattr(obj, name, data[name])
                # preprocessors saved before missing genes were extrapolated: NaN counts as zero
                obj.gene_share_ = data["gene_share_"] if "gene_share_" in data.files else None
        except (OSError, KeyError, ValueError) as exc:
            raise ModelError(f"{path}: not a preprocessor written by CellPreprocessor.save ({exc})") from exc
        return obj


def build_preprocessor(config: PreprocessConfig) -> CellPreprocessor:
    """An unfitted :class:`CellPreprocessor` with the hyper-parameters of params.yaml ``preprocess``."""
    return CellPreprocessor(
        target_sum=config.target_sum,
        n_top_genes=config.n_top_genes,
        min_cells_fraction=config.min_cells_fraction,
        n_components=config.n_components,
        seed=config.seed,
    )
