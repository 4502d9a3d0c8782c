"""Read a user's AnnData file and map its labels onto persister / non-persister.

Users' ``obs`` columns have their own names (``condition``, ``patient``) and values
(``treated_day14``); params.yaml says which column holds what and which values
mean persister. Cells with other values are dropped and counted, not guessed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import anndata as ad
import pandas as pd
from scipy import sparse

from oncopersistnet import NON_PERSISTER, PERSISTER
from oncopersistnet.errors import InputDataError

logger = logging.getLogger(__name__)


def read_h5ad(path: str | Path, backed: bool = False) -> ad.AnnData:
    """Open an ``.h5ad`` file or raise :class:`InputDataError` saying why it cannot be read."""
    path = Path(path)
    if not path.exists():
        raise InputDataError(f"{path}: no such file")
    if path.is_dir():
        raise InputDataError(f"{path}: is a directory, expected an .h5ad file")
    try:
        return ad.read_h5ad(path, backed="r" if backed else None)
    except Exception as exc:  # h5py/anndata raise many types for a corrupt file
        raise InputDataError(
            f"{path}: not a readable .h5ad file ({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]})"
        ) from exc


def load_labelled_h5ad(
    path: str | Path,
    label_key: str,
    sample_key: str,
    persister_values: Sequence[str],
    non_persister_values: Sequence[str],
) -> ad.AnnData:
    """Load counts from ``X`` with ``obs['label']`` and ``obs['sample']`` in project terms.

    Returns a new AnnData with CSR counts, cells whose label is neither a persister
    nor a non-persister value dropped (and logged), and the original columns kept.
    """
    adata = read_h5ad(path)
    for role, key in (("label_key", label_key), ("sample_key", sample_key)):
        if key not in adata.obs.columns:
            raise InputDataError(
                f"{path}: obs has no column {key!r} (data.{role}); columns are: "
                f"{', '.join(map(str, adata.obs.columns)) or 'none'}"
            )
    raw_labels = adata.obs[label_key].astype(str)
    mapping = {value: PERSISTER for value in persister_values}
    mapping.update({value: NON_PERSISTER for value in non_persister_values})
    mapped = raw_labels.map(mapping)
    keep = mapped.notna().to_numpy()
    if not keep.any():
        found = ", ".join(sorted(raw_labels.unique())[:10])
        raise InputDataError(
            f"{path}: no cell has a label listed in data.persister_values or "
            f"data.non_persister_values (obs[{label_key!r}] has: {found})"
        )
    dropped = int((~keep).sum())
    if dropped:
        counts = raw_labels[~keep].value_counts()
        logger.warning(
            "dropped %d cells whose %s is neither persister nor non-persister: %s",
            dropped, label_key, ", ".join(f"{k} ({v})" for k, v in counts.items()),
        )
    subset = adata[keep].copy()
    matrix = subset.X
    matrix = sparse.csr_matrix(matrix) if not sparse.issparse(matrix) else matrix.tocsr()
    obs = subset.obs.copy()
    obs["label"] = pd.Categorical(mapped[keep].to_numpy(), categories=[NON_PERSISTER, PERSISTER])
    obs["sample"] = subset.obs[sample_key].astype(str).to_numpy()
    out = ad.AnnData(X=matrix, obs=obs, var=pd.DataFrame(index=subset.var_names.astype(str)))
    out.uns["source"] = {"input": str(path), "label_key": label_key, "sample_key": sample_key}
    logger.info(
        "loaded %d cells x %d genes from %s (%d persisters, %d samples)",
        out.n_obs, out.n_vars, path, int((obs["label"] == PERSISTER).sum()), obs["sample"].nunique(),
    )
    return out
