"""The simulator: deterministic per seed, shaped like droplet scRNA-seq."""

from dataclasses import replace

import numpy as np
import pytest
from conftest import SMALL
from scipy import sparse

from oncopersistnet.config import SimulateConfig, shipped_params
from oncopersistnet.data.simulate import PERSISTER_GENES, PROLIFERATION_GENES, simulate_cells
from oncopersistnet.errors import ConfigError


def test_same_seed_same_data_other_seed_other_data(small_adata):
    again = simulate_cells(SMALL)
    assert (small_adata.X != again.X).nnz == 0
    assert small_adata.obs.equals(again.obs)
    other = simulate_cells(SimulateConfig(**{**vars(SMALL), "seed": 4}))
    assert (small_adata.X != other.X).nnz > 0


def test_counts_look_like_droplet_data(small_adata):
    X = small_adata.X
    assert sparse.isspmatrix_csr(X) or isinstance(X, sparse.csr_array)
    assert np.issubdtype(X.dtype, np.integer) and X.data.min() >= 0
    assert 1 - X.nnz / np.prod(X.shape) > 0.6  # many zeros
    library = np.asarray(X.sum(axis=1)).ravel()
    assert np.percentile(library, 95) / np.percentile(library, 5) > 3  # several-fold library sizes
    means = np.asarray(X.mean(axis=0)).ravel()
    variances = np.asarray(X.multiply(X).mean(axis=0)).ravel() - means**2
    expressed = means > 1
    assert np.median(variances[expressed] / means[expressed]) > 1.5  # over-dispersed vs Poisson


def test_persister_programme_has_the_documented_direction(small_adata):
    a = small_adata
    norm = a.X.multiply(1 / a.X.sum(axis=1)).tocsr()
    is_p = (a.obs["label"] == "persister").to_numpy()

    def mean_of(genes):
        idx = [a.var_names.get_loc(g) for g in genes if g in a.var_names]
        return np.asarray(norm[:, idx].mean(axis=1)).ravel()

    assert mean_of(PERSISTER_GENES)[is_p].mean() > mean_of(PERSISTER_GENES)[~is_p].mean()
    assert mean_of(PROLIFERATION_GENES)[is_p].mean() < mean_of(PROLIFERATION_GENES)[~is_p].mean()


def test_design_untreated_and_treated_cultures(small_adata):
    obs = small_adata.obs
    per_sample = obs.groupby("sample", observed=True).agg(
        condition=("condition", "first"), labels=("label", "unique")
    )
    assert len(per_sample) == SMALL.n_samples
    assert sorted(set(per_sample["condition"])) == ["day0", "treated_day14", "treated_day7"]
    for _, row in per_sample.iterrows():  # no label noise in the fixture: one label per culture
        expected = "non-persister" if row["condition"] == "day0" else "persister"
        assert list(row["labels"]) == [expected]


def test_label_noise_flips_about_that_fraction():
    noisy = simulate_cells(SimulateConfig(**{**vars(SMALL), "label_noise": 0.1}))
    treated = noisy.obs["condition"] != "day0"
    flipped = (noisy.obs["label"] == "persister") != treated
    assert 0.05 < flipped.mean() < 0.15


def test_gene_names_are_real_gencode_symbols(small_adata):
    from oncopersistnet.genes import load_gene_table

    canonical = load_gene_table().canonical_symbol
    assert all(canonical.get(g.upper()) == g for g in small_adata.var_names)
    assert small_adata.var_names.is_unique


def test_default_dataset_is_sparse_like_droplet_data():
    adata = simulate_cells(
        replace(shipped_params().simulate, n_cells=600)
    )  # default genes, programme and depth
    assert 1 - adata.X.nnz / np.prod(adata.X.shape) >= 0.85


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_samples": 1}, "at least 2 samples"),
        ({"n_cells": 5}, "cannot fill"),
        ({"persister_fraction": 0.0}, "strictly between"),
    ],
)
def test_impossible_settings_are_refused(change, message):
    with pytest.raises(ConfigError, match=message):
        simulate_cells(SimulateConfig(**{**vars(SMALL), **change}))
