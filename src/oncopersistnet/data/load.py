"""Read a user's AnnData file and map its labels onto persister / non-persister.

Users' ``obs`` columns have their own names (``condition``, ``patient``) and values
(``treated_day14``); params.yaml says which column holds what and which values
mean persister. Cells with other values are dropped and counted, not guessed.
"""

from __future__ import annotations

import logging

import anndata as ad
import pandas as pd
from scipy import sparse

from oncopersistnet.config import DataConfig
from oncopersistnet.data.labels import NON_PERSISTER, PERSISTER, LabelScheme, canonical_labels
from oncopersistnet.data.readers import join_metadata, read_counts
from oncopersistnet.errors import InputDataError

logger = logging.getLogger(__name__)


def label_cells(adata: ad.AnnData, scheme: LabelScheme, source: str) -> ad.AnnData:
    """``obs['label']`` and ``obs['sample']`` in project terms; other labels dropped and counted.

    ``scheme`` names the obs columns and the values of each class (``data.*`` or a
    study's entry). Returns a new AnnData with CSR counts and the original obs columns kept.
    """
    label_key, sample_key = scheme.label_key, scheme.sample_key
    for role, key in (("label_key", label_key), ("sample_key", sample_key)):
        if key not in adata.obs.columns:
            raise InputDataError(
                f"{source}: obs has no column {key!r} (data.{role}); columns are: "
                f"{', '.join(map(str, adata.obs.columns)) or 'none'}"
            )
    raw_labels = adata.obs[label_key].astype(str)
    mapped = canonical_labels(raw_labels, scheme.persister_values, scheme.non_persister_values)
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
            dropped,
            label_key,
            ", ".join(f"{k} ({v})" for k, v in counts.items()),
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
    for column in obs.select_dtypes(
        include="object"
    ).columns:  # mixed-type columns cannot be written to .h5ad
        obs[column] = obs[column].astype(str)
    obs["label"] = pd.Categorical(mapped[keep].to_numpy(), categories=[NON_PERSISTER, PERSISTER])
    obs["sample"] = subset.obs[sample_key].astype(str).to_numpy()
    out = ad.AnnData(X=matrix, obs=obs, var=subset.var.copy(), uns=dict(adata.uns))
    out.uns["source"] = {"input": source, "label_key": label_key, "sample_key": sample_key}
    logger.info(
        "labelled %d cells x %d genes from %s (%d persisters, %d samples)",
        out.n_obs,
        out.n_vars,
        source,
        int((obs["label"] == PERSISTER).sum()),
        obs["sample"].nunique(),
    )
    return out


def load_labelled(config: DataConfig) -> ad.AnnData:
    """Read ``data.input`` in any supported format, join metadata, map labels."""
    assert config.input is not None
    adata = read_counts(config.input, counts_source=config.counts_source, orientation=config.orientation)
    if config.metadata:
        adata = join_metadata(adata, config.metadata, config.metadata_cell_column)
    return label_cells(adata, config, config.input)
