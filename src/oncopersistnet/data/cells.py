"""One labelled set of cells, as every part of the library passes it around.

Splits of the validated data, the preprocess stage's feature files, a study of the
cross-study report, a new dataset mapped onto a model's genes and several studies
pooled together are all the same thing: a cells x columns matrix, the target of
every cell (1 = persister), its biological sample, its id and the column names.
:class:`Cells` holds exactly that; what a use adds (a study's name and origin, a
gene match, the study of every pooled cell) lives in a record that *holds* a
``Cells``, so the five arrays are subset, saved and read in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import anndata as ad
import numpy as np
from scipy import sparse

from oncopersistnet.atomic import write_npz
from oncopersistnet.data.labels import binary_labels
from oncopersistnet.errors import InputDataError


def _no_names() -> np.ndarray:
    return np.array([], dtype=str)


@dataclass(frozen=True, kw_only=True)
class Cells:
    """Cells x columns with the target, sample and id of every cell.

    ``X`` is either raw counts (a CSR matrix, or a dense float32 array with NaN for a
    gene a study lacks) with ``genes`` naming its columns, or model-ready features
    (dense float32 PCA coordinates) with ``genes`` empty: principal components have
    no names of their own, their order is the preprocessor's.
    """

    X: sparse.csr_matrix | np.ndarray
    y: np.ndarray  # int64, 1 = persister
    samples: np.ndarray
    cell_ids: np.ndarray
    genes: np.ndarray = field(default_factory=_no_names)

    @property
    def n_cells(self) -> int:
        return int(self.X.shape[0])

    def subset(self, mask: np.ndarray) -> Cells:
        """The cells where ``mask`` is true (or at the positions it lists); columns unchanged."""
        return replace(
            self, X=self.X[mask], y=self.y[mask], samples=self.samples[mask], cell_ids=self.cell_ids[mask]
        )

    def with_X(self, X: sparse.csr_matrix | np.ndarray, genes: np.ndarray | None = None) -> Cells:
        """The same cells over other columns: raw counts aligned to a model, or features (``genes`` empty)."""
        return replace(self, X=X, genes=_no_names() if genes is None else np.asarray(genes, dtype=str))

    @classmethod
    def from_anndata(cls, adata: ad.AnnData) -> Cells:
        """A labelled AnnData (``obs['label']`` persister / non-persister, ``obs['sample']``) as CSR counts.

        The one conversion from AnnData: labels of a user's file are mapped to
        persister / non-persister first (:func:`oncopersistnet.data.load.label_cells`).
        """
        return cls(
            X=sparse.csr_matrix(adata.X),
            y=binary_labels(adata.obs["label"]),
            samples=np.asarray(adata.obs["sample"], dtype=str),
            cell_ids=np.asarray(adata.obs_names, dtype=str),
            genes=np.asarray(adata.var_names, dtype=str),
        )

    @classmethod
    def concat(cls, parts: list[Cells]) -> Cells:
        """The cells of ``parts`` in turn (dense ``X``, same columns; the first part's ``genes``)."""
        return cls(
            X=np.vstack([part.X for part in parts]),
            y=np.concatenate([part.y for part in parts]),
            samples=np.concatenate([part.samples for part in parts]),
            cell_ids=np.concatenate([part.cell_ids for part in parts]),
            genes=parts[0].genes,
        )

    def save(self, path: str | Path) -> None:
        """Write features atomically as ``.npz`` (X, y, cell_ids, samples), loadable without pickle.

        This is the preprocess stage's feature file format: unicode (not object)
        arrays, ``X`` float32, ``y`` int64. ``genes`` is not written (features have none).
        """
        write_npz(
            path,
            {
                "X": np.asarray(self.X).astype(np.float32),
                "y": self.y.astype(np.int64),
                "cell_ids": self.cell_ids.astype(str),
                "samples": self.samples.astype(str),
            },
        )

    @classmethod
    def load(cls, path: str | Path) -> Cells:
        """Read a feature file written by :meth:`save`."""
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(X=data["X"], y=data["y"], cell_ids=data["cell_ids"], samples=data["samples"])
        except (OSError, KeyError, ValueError) as exc:
            raise InputDataError(
                f"{path}: not a feature file written by the preprocess stage ({exc})"
            ) from exc
