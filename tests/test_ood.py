"""The out-of-distribution distance: its arithmetic by hand, its threshold, the same flag at every door."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import requests
from conftest import dense
from scipy import sparse
from serving_helpers import onnx_model, service_config, start, stop  # noqa: F401  (onnx_model is a fixture)

import oncopersistnet
from oncopersistnet.cli import main
from oncopersistnet.inference import OnnxPersisterModel
from oncopersistnet.preprocessing.distance import TrainingDistance


def test_training_cells_average_one_by_construction(fitted, trust, small_adata, small_split):
    """PPCA fitted on the training cells: over them, mean q is the number of genes, mean D^2 exactly 1."""
    pre = fitted[0]
    distance = trust.distance.distance(pre, small_adata.X[small_split == "train"])
    assert np.mean(distance**2) == pytest.approx(1.0, abs=1e-9)


def test_threshold_is_the_validation_quantile(fitted, trust, small_adata, small_split):
    pre = fitted[0]
    validation = trust.distance.distance(pre, small_adata.X[small_split == "val"])
    assert trust.distance.threshold_ == pytest.approx(np.quantile(validation, 0.99))
    # the interpolated quantile leaves at most one cell more above it than the nominal 1 %
    assert np.mean(validation > trust.distance.threshold_) <= 0.01 + 1 / len(validation)


def test_distance_by_hand_is_the_mahalanobis_distance_of_the_measured_genes(fitted, trust, small_adata):
    """sqrt(x_o^T (W_o W_o^T + s2 I)^-1 x_o / |o|), the covariance built and inverted in full."""
    pre, fitted_distance = fitted[0], trust.distance
    counts = dense(small_adata.X[:3])
    counts[1, ::2] = np.nan  # half the genes missing for the second cell
    share = np.where(np.isnan(counts), pre.gene_share_, 0.0).sum(1, keepdims=True)
    library = np.nansum(counts, axis=1, keepdims=True) / (1 - share)  # missing genes' counts extrapolated
    logged = np.log1p(counts / library * pre.target_sum)[:, pre.selected_]
    expected = []
    for row in logged:
        o = ~np.isnan(row)
        x = ((row[o] - pre.min_[o]) / pre.range_[o]) - pre.pca_mean_[o]
        w = fitted_distance.loadings_[o]
        covariance = w @ w.T + fitted_distance.noise_variance_ * np.eye(o.sum())
        expected.append(np.sqrt(x @ np.linalg.solve(covariance, x) / o.sum()))
    assert fitted_distance.distance(pre, counts) == pytest.approx(expected, rel=1e-8)


def test_missing_genes_alone_do_not_raise_the_flag_but_strange_cells_do(fitted, trust, small_adata):
    """Ordinary cells with half their genes missing stay below the threshold; cells with their genes
    shuffled (a different cell type in miniature) are flagged, also with half their genes missing."""
    pre = fitted[0]
    rng = np.random.default_rng(0)
    counts = dense(small_adata.X[:200])
    half = rng.random(counts.shape[1]) < 0.5
    ordinary = counts.copy()
    ordinary[:, half] = np.nan
    strange = counts[:, rng.permutation(counts.shape[1])]
    strange_panel = strange.copy()
    strange_panel[:, half] = np.nan
    threshold = trust.distance.threshold_
    assert np.mean(trust.distance.distance(pre, ordinary) > threshold) < 0.05
    assert np.mean(trust.distance.distance(pre, strange) > threshold) > 0.9
    assert np.mean(trust.distance.distance(pre, strange_panel) > threshold) > 0.9


def test_the_graph_computes_the_python_distance(onnx_model, fitted, trust, small_adata):
    counts = dense(small_adata.X[:64]).astype(np.float32)
    counts[:, ::7] = np.nan
    _, graph = OnnxPersisterModel(onnx_model).predict(counts)
    python = trust.distance.distance(fitted[0], counts.astype(np.float64))
    assert np.max(np.abs(graph - python) / np.maximum(python, 1)) < 1e-4  # conjugate gradients, float32


def test_fit_refuses_a_quantile_outside_0_1(fitted, small_adata):
    with pytest.raises(Exception, match="strictly between 0 and 1"):
        TrainingDistance(quantile=1.0).fit(fitted[0], small_adata.X[:10], small_adata.X[10:20])


# ----------------------------------------------------------------- every door, the same flag
@pytest.fixture(scope="module")
def mixed_file(small_adata, tmp_path_factory):
    """40 ordinary cells, then 40 with their genes shuffled (unlike any training cell)."""
    counts = dense(small_adata.X[:80])
    counts[40:] = counts[40:, np.random.default_rng(1).permutation(counts.shape[1])]
    path = tmp_path_factory.mktemp("ood") / "mixed.h5ad"
    adata = ad.AnnData(
        X=sparse.csr_matrix(counts.astype(np.float32)),
        obs=pd.DataFrame(index=[f"c{i}" for i in range(80)]),
        var=pd.DataFrame(index=small_adata.var_names),
    )
    adata.write_h5ad(path)
    return path


def test_cli_http_and_python_flag_the_same_cells(onnx_model, mixed_file, tmp_path, capsys):
    out = tmp_path / "rows.csv"
    assert (
        main(["predict", "--input", str(mixed_file), "--output", str(out), "--model", str(onnx_model)]) == 0
    )
    rows = pd.read_csv(out)
    assert rows["out_of_distribution"].dtype == bool
    assert rows["out_of_distribution"][40:].mean() > 0.9 and rows["out_of_distribution"][:40].mean() < 0.1
    assert "out of distribution (more than predict.ood_warn_fraction 10%)" in capsys.readouterr().err

    adata = ad.read_h5ad(mixed_file)
    oncopersistnet.annotate(adata, str(onnx_model))
    assert adata.obs["persister_ood"].dtype == "boolean"
    assert (adata.obs["persister_ood"].to_numpy(dtype=bool) == rows["out_of_distribution"].to_numpy()).all()
    assert np.allclose(adata.obs["persister_ood_distance"], rows["ood_distance"], atol=1e-6)
    assert adata.uns["oncopersistnet"]["out_of_distribution"] == int(rows["out_of_distribution"].sum())

    server, thread, url = start(service_config(model=str(onnx_model)))
    try:
        genes = list(adata.var_names)
        cells = [{g: float(v) for g, v in zip(genes, row, strict=True) if v} for row in dense(adata.X)]
        answer = requests.post(f"{url}/predict", json={"cells": cells}).json()
    finally:
        stop(server, thread)
    flags = [c["out_of_distribution"] for c in answer["cells"]]
    assert flags == rows["out_of_distribution"].tolist()
    assert answer["summary"]["ood_warning"] and answer["summary"]["out_of_distribution"] == sum(flags)
