"""One split's model-ready features, saved as a plain ``.npz`` (no pickle)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oncopersistnet.atomic import atomic_path
from oncopersistnet.errors import InputDataError


@dataclass(frozen=True)
class FeatureSet:
    """PCA features ``X`` (float32), binary labels ``y`` (1 = persister) and cell identity."""

    X: np.ndarray
    y: np.ndarray
    cell_ids: np.ndarray
    samples: np.ndarray

    def save(self, path: str | Path) -> None:
        """Write atomically as ``.npz`` with unicode (not object) arrays, loadable without pickle."""
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(
                    handle,
                    X=self.X.astype(np.float32),
                    y=self.y.astype(np.int64),
                    cell_ids=self.cell_ids.astype(str),
                    samples=self.samples.astype(str),
                )

    @classmethod
    def load(cls, path: str | Path) -> FeatureSet:
        """Read a file written by :meth:`save`."""
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(X=data["X"], y=data["y"], cell_ids=data["cell_ids"], samples=data["samples"])
        except (OSError, KeyError, ValueError) as exc:
            raise InputDataError(
                f"{path}: not a feature file written by the preprocess stage ({exc})"
            ) from exc
