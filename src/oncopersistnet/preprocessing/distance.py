"""How unlike the training cells a cell is: the out-of-distribution distance and its threshold.

The distance is the Mahalanobis distance of the genes a cell *measured* under probabilistic
PCA's model of the training cells, per measured gene. PPCA (Tipping & Bishop) models the
training cells' selected genes (scaled and centred as the network's features are) as
Gaussian with covariance ``W W^T + s2 I``: the ``k`` PCA axes with their training variances,
plus isotropic noise ``s2`` (the mean variance of the discarded axes). For a cell measuring the
genes ``o``, its measured values ``x_o`` have covariance ``W_o W_o^T + s2 I``, and

    q = x_o^T (W_o W_o^T + s2 I)^-1 x_o = (|x_o|^2 - c^T (s2 I + W_o^T W_o)^-1 c) / s2,   c = W_o^T x_o

(Woodbury), which is ``|o|`` on average for cells like the training cells. The reported
distance is ``sqrt(q / |o|)``: near 1 for a typical training cell, larger when the measured
genes are unlike the training cells' in level or in co-expression, off or along the axes.

Why this one. Measured before choosing, on the default pipeline (threshold: 99th percentile
of validation cells; "control" = held-out cells of the training world with the same genes
removed as the dataset lacks):
* plain Mahalanobis in PCA space, reconstruction error or their sum on the *imputed* cell
  flagged 0 % of another simulated world and of glioblastoma cells: an imputed gene sits at
  its training mean and makes a cell with most genes missing look typical;
* the same sum over measured genes only flagged 97 % and 86 %, but the controls were
  flagged as often: it measured the missing genes, not the cells (with library sizes
  counted over the measured genes only, every measured gene looked over-expressed);
* this distance, with missing genes' counts extrapolated in the library size
  (:mod:`oncopersistnet.preprocessing.normalize`): 98 % of the other world against 14 % of
  its control, 37 % of glioblastoma cells against 13 % of theirs, 1.3 % of held-out cells
  with half the genes removed, 0.4 % of intact held-out cells. The controls stay above 1 %
  because ``q / |o|`` spreads more over few genes; the trust stage reports them beside the
  datasets so the difference, not the raw rate, is read.

Fitted on training cells (axes, variances, noise), thresholded on validation cells (a
quantile of their distance): never on test cells. The deployed graph computes the same
arithmetic (:class:`oncopersistnet.export.graph.TrustedGraph`, by conjugate gradients).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from oncopersistnet.errors import InputDataError, ModelError
from oncopersistnet.preprocessing.transformer import CellPreprocessor


class TrainingDistance:
    """Distance of a cell to the training cells (PPCA Mahalanobis over measured genes).

    Parameters
    ----------
    quantile: the threshold is this quantile of the validation cells' distances; a new cell
        above it is flagged out of distribution (about ``1 - quantile`` of cells like the
        validation cells are flagged by chance).
    """

    def __init__(self, *, quantile: float = 0.99) -> None:
        self.quantile = quantile

    def fit(
        self,
        preprocessor: CellPreprocessor,
        train_counts: sparse.spmatrix | np.ndarray,
        val_counts: sparse.spmatrix | np.ndarray,
    ) -> TrainingDistance:
        """PPCA from ``train_counts``, the threshold from ``val_counts`` (raw counts over the
        preprocessor's genes)."""
        if not 0.0 < self.quantile < 1.0:
            raise InputDataError(f"ood quantile must lie strictly between 0 and 1, got {self.quantile}")
        if train_counts.shape[0] < 2 or val_counts.shape[0] < 1:
            raise InputDataError("training distance: at least 2 training and 1 validation cell are needed")
        components = preprocessor.components_
        centred, measured = preprocessor.centred(train_counts)
        centred = centred * measured
        coordinates = centred @ components.T
        residual = (centred - coordinates @ components) * measured
        n_axes = components.shape[0]
        discarded = max(int(measured.sum()) - n_axes * centred.shape[0], 1)
        self.noise_variance_ = float(max((residual**2).sum() / discarded, np.finfo(np.float32).tiny))
        signal = np.maximum(coordinates.var(axis=0) - self.noise_variance_, 0.0)
        self.loadings_ = components.T * np.sqrt(signal)[None, :]  # W: genes x axes
        validation = self.distance(preprocessor, val_counts)
        self.threshold_ = float(np.quantile(validation[np.isfinite(validation)], self.quantile))
        self.n_validation_cells_ = int(val_counts.shape[0])
        return self

    def distance(
        self, preprocessor: CellPreprocessor, counts: sparse.spmatrix | np.ndarray, *, chunk: int = 256
    ) -> np.ndarray:
        """Per cell, ~1 for a typical training cell, larger is less like them; NaN for a cell that
        measured none of the selected genes."""
        if not hasattr(self, "loadings_"):
            raise ModelError("TrainingDistance is not fitted: call fit() first")
        centred, measured = preprocessor.centred(counts)
        return np.concatenate(
            [
                self._distance(centred[i : i + chunk], measured[i : i + chunk])
                for i in range(0, max(len(centred), 1), chunk)
            ]
        )[: len(centred)]

    def _distance(self, centred: np.ndarray, measured: np.ndarray) -> np.ndarray:
        """Exact Woodbury form of the module docstring, one k x k solve per cell."""
        w, s2 = self.loadings_, self.noise_variance_
        x = centred * measured
        c = x @ w
        gram = np.einsum("bg,gk,gl->bkl", measured.astype(np.float64), w, w)
        gram += s2 * np.eye(w.shape[1])[None]
        explained = np.einsum("bk,bk->b", c, np.linalg.solve(gram, c[..., None])[..., 0])
        q = np.maximum((np.einsum("bg,bg->b", x, x) - explained) / s2, 0.0)
        n = measured.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, np.sqrt(q / np.maximum(n, 1)), np.nan)

    def metadata(self) -> dict[str, float]:
        """What the exported model says about its flag (the PPCA itself is inside the graph)."""
        return {
            "threshold": self.threshold_,
            "quantile": self.quantile,
            "validation_cells": self.n_validation_cells_,
            "noise_variance": self.noise_variance_,
            "distance": "PPCA Mahalanobis distance of the measured selected genes, per gene",
        }
