"""Group split and the train-only preprocessor."""

import numpy as np
import pytest
from conftest import dense
from scipy import sparse

from oncopersistnet.errors import DataValidationError, InputDataError
from oncopersistnet.preprocessing import CellPreprocessor, log_normalize, split_by_sample


def test_split_is_by_sample_with_both_classes_everywhere(small_adata, small_split):
    samples = small_adata.obs["sample"].astype(str).to_numpy()
    labels = small_adata.obs["label"].astype(str).to_numpy()
    for name in ("train", "val", "test"):
        assert set(labels[small_split == name]) == {"persister", "non-persister"}
    owner = {}
    for sample, split in zip(samples, small_split, strict=True):
        assert owner.setdefault(sample, split) == split, f"sample {sample} is in two splits"


def test_split_is_seeded(small_adata):
    args = (small_adata.obs["sample"], small_adata.obs["label"])
    kwargs = {"val_fraction": 0.2, "test_fraction": 0.3}
    assert (split_by_sample(*args, **kwargs, seed=1) == split_by_sample(*args, **kwargs, seed=1)).all()


def test_split_refuses_too_few_samples():
    with pytest.raises(DataValidationError, match="at least 3"):
        split_by_sample(
            ["a", "a", "b", "b"],
            ["persister", "non-persister"] * 2,
            val_fraction=0.2,
            test_fraction=0.3,
            seed=0,
        )


def test_split_refuses_when_a_class_cannot_reach_every_split():
    samples = ["a", "b", "c", "d"]
    labels = ["persister", "non-persister", "non-persister", "non-persister"]
    with pytest.raises(DataValidationError, match="both classes"):
        split_by_sample(samples, labels, val_fraction=0.25, test_fraction=0.25, seed=0)


def test_log_normalize_sparse_equals_dense_and_nan_counts_as_missing():
    counts = np.array([[1.0, 3.0, 0.0], [0.0, 0.0, 0.0], [2.0, 2.0, 4.0]])
    from_sparse = log_normalize(sparse.csr_matrix(counts), 100.0).toarray()
    assert np.allclose(from_sparse, log_normalize(counts, 100.0))
    assert np.allclose(from_sparse[0], np.log1p([25.0, 75.0, 0.0]))
    assert np.allclose(from_sparse[1], 0.0)  # an empty cell stays finite
    with_nan = counts.copy()
    with_nan[0, 2] = np.nan
    out = log_normalize(with_nan, 100.0)
    assert np.isnan(out[0, 2]) and np.allclose(out[0, :2], np.log1p([25.0, 75.0]))


def test_fit_is_deterministic(small_adata, small_split):
    train = small_adata.X[small_split == "train"]
    first = CellPreprocessor(n_top_genes=100, n_components=10).fit(train, small_adata.var_names)
    again = CellPreprocessor(n_top_genes=100, n_components=10).fit(train, small_adata.var_names)
    assert np.array_equal(first.selected_, again.selected_)
    assert np.array_equal(first.components_, again.components_)


def test_transform_matches_a_plain_scikit_learn_pipeline(fitted, small_adata, small_split):
    from sklearn.decomposition import PCA
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    pre, features, _ = fitted
    logged = log_normalize(small_adata.X, pre.target_sum)[:, pre.selected_].toarray()
    train = logged[small_split == "train"]
    reference = make_pipeline(
        SimpleImputer(), MinMaxScaler(), PCA(pre.n_features_out, svd_solver="full")
    ).fit(train)
    assert np.allclose(reference.transform(logged[small_split == "test"]), features["test"], atol=1e-4)


def test_missing_genes_are_imputed_with_training_means(fitted, small_adata, small_split):
    pre, _, _ = fitted
    counts = dense(small_adata.X[small_split == "test"][:5])
    counts[:, pre.selected_[:3]] = np.nan
    out = pre.transform(counts)
    assert np.isfinite(out).all()


def test_save_load_roundtrip_without_pickle(fitted, small_adata, tmp_path):
    pre, _, _ = fitted
    pre.save(tmp_path / "pre.npz")
    loaded = CellPreprocessor.load(tmp_path / "pre.npz")
    assert np.array_equal(loaded.transform(small_adata.X[:20]), pre.transform(small_adata.X[:20]))
    assert list(loaded.genes_) == list(small_adata.var_names)


def test_transform_refuses_the_wrong_gene_count(fitted):
    pre, _, _ = fitted
    with pytest.raises(InputDataError, match="expects 300"):
        pre.transform(np.zeros((2, 7)))
