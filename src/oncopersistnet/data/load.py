"""Read a user's AnnData file and map its labels onto persister / non-persister.

Users' ``obs`` columns have their own names (``condition``, ``patient``) and values
(``treated_day14``); params.yaml says which column holds what and which values
mean persister. Cells with other values are dropped and counted, not guessed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import anndata as ad
import pandas as pd
from scipy import sparse

from oncopersistnet import NON_PERSISTER, PERSISTER
from oncopersistnet.config import DataConfig
from oncopersistnet.errors import InputDataError

logger = logging.getLogger(__name__)


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_TRUNCATED = re.compile(r"truncated file: eof = (\d+).*stored_eof = (\d+)")


def hdf5_problem(path: Path, exc: BaseException) -> str:
    """Why an HDF5 file (.h5ad, 10x .h5) did not open, in words rather than h5py's.

    h5py says "file signature not found" for an empty file, a CSV renamed .h5ad
    and random bytes alike, and "truncated file: eof = ..." for a cut download.
    """
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    truncated = _TRUNCATED.search(text)
    if truncated:
        have, need = (int(v) for v in truncated.groups())
        return f"the file is truncated: {have:,} of {need:,} bytes (an incomplete download or copy?)"
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
    except OSError:
        head = None
    if head == b"":
        return "the file is empty (0 bytes)"
    if head is not None and "signature not found" in text and not head.startswith(_HDF5_SIGNATURE):
        first = head.split(b"\n")[0][:40]
        try:
            return f"not an HDF5 file: it starts with text {first.decode('utf-8')!r}"
        except UnicodeDecodeError:
            return f"not an HDF5 file: it starts with bytes {first[:16]!r}"
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


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
        raise InputDataError(f"{path}: not a readable .h5ad file ({hdf5_problem(path, exc)})") from exc


def label_cells(
    adata: ad.AnnData,
    label_key: str,
    sample_key: str,
    persister_values: Sequence[str],
    non_persister_values: Sequence[str],
    source: str,
) -> ad.AnnData:
    """``obs['label']`` and ``obs['sample']`` in project terms; other labels dropped and counted.

    Returns a new AnnData with CSR counts and the original obs columns kept.
    """
    for role, key in (("label_key", label_key), ("sample_key", sample_key)):
        if key not in adata.obs.columns:
            raise InputDataError(
                f"{source}: obs has no column {key!r} (data.{role}); columns are: "
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
            f"{source}: no cell has a label listed in data.persister_values or "
            f"data.non_persister_values (obs[{label_key!r}] has: {found})"
        )
    dropped = int((~keep).sum())
    if dropped:
        counts = raw_labels[~keep].value_counts()
        logger.warning(
            "dropped %d cells whose %s is neither persister nor non-persister: %s",
            dropped, label_key, ", ".join(f"{k} ({v})" for k, v in counts.items()),
        )
    samples = adata.obs[sample_key][keep]
    if samples.isna().any():
        missing = samples.index[samples.isna().to_numpy()]
        raise InputDataError(
            f"{source}: {len(missing)} cells have no {sample_key!r} value (data.sample_key), e.g. "
            f"{', '.join(map(str, missing[:3]))}; every cell needs its biological sample for the group split"
        )
    subset = adata if keep.all() else adata[keep]  # no copy of a large matrix when nothing is dropped
    matrix = sparse.csr_matrix(subset.X)
    obs = subset.obs.copy()
    for column in obs.columns[obs.dtypes == object]:  # mixed-type columns cannot be written to .h5ad
        obs[column] = obs[column].astype(str)
    obs["label"] = pd.Categorical(mapped[keep].to_numpy(), categories=[NON_PERSISTER, PERSISTER])
    obs["sample"] = subset.obs[sample_key].astype(str).to_numpy()
    out = ad.AnnData(X=matrix, obs=obs, var=subset.var.copy(), uns=dict(adata.uns))
    out.uns["source"] = {"input": source, "label_key": label_key, "sample_key": sample_key}
    logger.info(
        "labelled %d cells x %d genes from %s (%d persisters, %d samples)",
        out.n_obs, out.n_vars, source, int((obs["label"] == PERSISTER).sum()), obs["sample"].nunique(),
    )
    return out


def load_labelled(config: DataConfig) -> ad.AnnData:
    """Read ``data.input`` in any supported format, join metadata, map labels."""
    from oncopersistnet.data.readers import join_metadata, read_counts

    assert config.input is not None
    adata = read_counts(config.input, counts_source=config.counts_source, orientation=config.orientation)
    if config.metadata:
        adata = join_metadata(adata, config.metadata, config.metadata_cell_column)
    return label_cells(
        adata, config.label_key, config.sample_key, config.persister_values, config.non_persister_values, config.input
    )
