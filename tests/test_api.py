"""``oncopersistnet.annotate`` and ``oncopersistnet.pl.calls``: the scanpy-style Python API.

The promise tested first: a cell annotated in Python gets exactly the probability, label
and no-call reason ``oncopersistnet predict`` gives it for the same file.
"""

from __future__ import annotations

import json
import subprocess
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from conftest import dense
from matplotlib.figure import Figure
from scipy import sparse
from serving_helpers import PREDICT, SIGNAL_FLOORS, onnx_model  # noqa: F401  (onnx_model is a fixture)

import oncopersistnet
from oncopersistnet.errors import InputDataError
from oncopersistnet.inference import OnnxPersisterModel, predict_file

N_NORMAL = 40


def _cells(small_adata) -> ad.AnnData:
    """40 normal cells, then an all-zero cell, a shallow one (12 counts on 12 genes) and one whose
    counts all fall on a gene the model does not know."""
    n_genes = small_adata.n_vars
    odd = np.zeros((3, n_genes + 1), dtype=np.float32)
    odd[1, :12] = 1
    odd[2, -1] = 100
    normal = np.hstack([dense(small_adata.X[:N_NORMAL]), np.zeros((N_NORMAL, 1))])
    ids = [f"n{i}" for i in range(N_NORMAL)] + ["zero", "shallow", "foreign"]
    return ad.AnnData(
        X=sparse.csr_matrix(np.vstack([normal, odd]).astype(np.float32)),
        obs=pd.DataFrame(index=ids),
        var=pd.DataFrame(index=[*map(str, small_adata.var_names), "NOTAGENE1"]),
    )


@pytest.fixture(scope="module")
def model(onnx_model):  # noqa: F811  (the fixture imported above)
    return OnnxPersisterModel(onnx_model)


@pytest.fixture(scope="module")
def cells_file(small_adata, tmp_path_factory):
    path = tmp_path_factory.mktemp("api") / "cells.h5ad"
    _cells(small_adata).write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def cli_rows(model, cells_file, tmp_path_factory):
    """What ``oncopersistnet predict`` writes for the file, with the project's predict.* values."""
    out = tmp_path_factory.mktemp("api_cli") / "out.parquet"  # float32 as scored (the CSV rounds)
    predict_file(
        model,
        cells_file,
        out,
        chunk_size=PREDICT.chunk_size,
        min_gene_fraction=PREDICT.min_gene_fraction,
        coverage=PREDICT.coverage,
        ood_warn_fraction=PREDICT.ood_warn_fraction,
        signal_floors=SIGNAL_FLOORS,
        progress=False,
    )
    return pd.read_parquet(out).set_index("cell_id")


def _same_as_cli(annotated: ad.AnnData, rows: pd.DataFrame) -> None:
    rows = rows.loc[annotated.obs_names]
    np.testing.assert_array_equal(
        annotated.obs["persister_probability"].to_numpy(),
        rows["persister_probability"].to_numpy(),
    )
    assert list(annotated.obs["persister_label"].astype(str)) == list(rows["predicted_label"])
    assert list(annotated.obs["persister_no_call_reason"]) == list(rows["no_call_reason"])


@pytest.mark.parametrize("chunk_size", [None, 7])
def test_annotate_gives_exactly_what_predict_writes(model, cells_file, cli_rows, chunk_size):
    adata = ad.read_h5ad(cells_file)
    assert oncopersistnet.annotate(adata, model, chunk_size=chunk_size) is None  # in place, like scanpy
    _same_as_cli(adata, cli_rows)
    labels = adata.obs["persister_label"]
    assert list(labels.cat.categories) == ["persister", "non-persister", "uncertain", "no_call"]
    assert list(labels[["zero", "shallow", "foreign"]]) == ["no_call"] * 3
    assert np.isnan(adata.obs.loc[["zero", "shallow", "foreign"], "persister_probability"]).all()
    assert adata.obs.loc["zero", "persister_no_call_reason"].startswith("0 counts over model genes")
    assert not np.isnan(adata.obs["persister_probability"][:N_NORMAL]).any()


def test_a_backed_anndata_is_scored_in_chunks_with_the_same_answers(model, cells_file, cli_rows):
    adata = ad.read_h5ad(cells_file, backed="r")
    try:
        oncopersistnet.annotate(adata, str(model.path), chunk_size=5)
        _same_as_cli(adata, cli_rows)
        copied = oncopersistnet.annotate(adata, model, chunk_size=5, copy=True)
        assert not copied.isbacked
        _same_as_cli(copied, cli_rows)
    finally:
        adata.file.close()


def test_counts_in_a_layer_are_found_when_x_is_normalised(model, cells_file, cli_rows):
    counts = ad.read_h5ad(cells_file)
    adata = ad.AnnData(
        X=sparse.csr_matrix(np.log1p(counts.X.toarray())), obs=counts.obs.copy(), var=counts.var.copy()
    )
    adata.layers["counts"] = counts.X.copy()
    oncopersistnet.annotate(adata, model)
    _same_as_cli(adata, cli_rows)
    assert adata.uns["oncopersistnet"]["counts_source"] == "layers/counts"


def test_copy_returns_an_annotated_copy_and_leaves_the_input_untouched(model, cells_file):
    adata = ad.read_h5ad(cells_file)
    before = adata.copy()
    annotated = oncopersistnet.annotate(adata, model, copy=True)
    assert "persister_label" not in adata.obs and "oncopersistnet" not in adata.uns
    assert list(adata.obs.columns) == list(before.obs.columns)
    assert (adata.X != before.X).nnz == 0
    assert annotated is not adata and "persister_label" in annotated.obs


def test_uns_records_the_model_the_rule_and_the_figures(model, cells_file):
    adata = ad.read_h5ad(cells_file)
    oncopersistnet.annotate(adata, model)
    uns = adata.uns["oncopersistnet"]
    assert uns["model"] == str(model.path)
    assert uns["threshold"] == model.threshold == 0.5
    assert uns["coverage"] == PREDICT.coverage and uns["ood_threshold"] == model.ood_threshold
    assert uns["out_of_distribution"] == int(adata.obs["persister_ood"].sum())
    # a cell without a call is neither in nor out of distribution: NA, and not in the fraction
    called = adata.obs["persister_label"] != "no_call"
    assert (
        adata.obs["persister_ood"][~called].isna().all() and adata.obs["persister_ood"][called].notna().all()
    )
    assert uns["out_of_distribution_fraction_of_called"] == pytest.approx(
        adata.obs["persister_ood"][called].mean()
    )
    cutoffs = uns["label_cutoffs"]  # where the labels turn: the sets' membership cut-offs
    q_non, q_pers = model.conformal.quantiles(PREDICT.coverage)
    assert cutoffs == pytest.approx(
        {"persister_in_set_from": 1 - q_pers, "non_persister_in_set_up_to": q_non}
    )
    assert uns["signal_floors"] == {
        "min_counts": PREDICT.min_counts,
        "min_detected_genes": PREDICT.min_detected_genes,
        "min_detected_selected_genes": PREDICT.min_detected_selected_genes,
    }
    assert (uns["genes_matched"], uns["genes_expected"]) == (len(model.genes), len(model.genes))
    assert uns["selected_genes_matched"] == len(model.selected_genes)
    assert uns["gene_fraction"] == 1.0
    counts = adata.obs["persister_label"].value_counts()
    assert uns["label_counts"] == {label: int(counts[label]) for label in counts.index}
    assert uns["label_counts"]["no_call"] == 3
    assert sum(uns["label_counts"].values()) == adata.n_obs
    assert uns["package_version"] == oncopersistnet.__version__


def test_options_override_the_params_defaults(model, cells_file):
    adata = ad.read_h5ad(cells_file)
    oncopersistnet.annotate(adata, model, coverage=0.5)
    assert adata.uns["oncopersistnet"]["coverage"] == 0.5
    sets = model.conformal.sets(adata.obs["persister_probability"].to_numpy(), 0.5)
    called = adata.obs["persister_label"] != "no_call"
    uncertain = adata.obs["persister_label"] == "uncertain"
    assert uncertain.sum() == (sets.sum(axis=1) != 1)[called.to_numpy()].sum()


def _with_x(x, genes) -> ad.AnnData:
    x = np.asarray(x, dtype=np.float32)
    return ad.AnnData(
        X=x, obs=pd.DataFrame(index=[f"c{i}" for i in range(len(x))]), var=pd.DataFrame(index=genes)
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda x: -x, "negative count"),
        (lambda x: np.where(x > 0, np.nan, x), "non-finite value"),
        (lambda x: x + 0.5, "not raw counts|normalised"),
    ],
)
def test_bad_counts_are_one_readable_error(model, small_adata, change, message):
    adata = _with_x(change(dense(small_adata.X[:5])), list(map(str, small_adata.var_names)))
    with pytest.raises(InputDataError, match=message):
        oncopersistnet.annotate(adata, model)


def test_no_overlap_with_the_model_genes_is_an_error(model, small_adata):
    adata = _with_x(dense(small_adata.X[:5]), [f"NOTAGENE{i}" for i in range(small_adata.n_vars)])
    with pytest.raises(InputDataError, match="0 of .* model genes found"):
        oncopersistnet.annotate(adata, model)


def test_an_empty_anndata_is_an_error(model, small_adata):
    with pytest.raises(InputDataError, match="empty"):
        oncopersistnet.annotate(_with_x(np.zeros((0, 3)), ["A", "B", "C"]), model)


def test_pl_calls_draws_each_label_with_its_cells(model, cells_file, tmp_path):
    adata = ad.read_h5ad(cells_file)
    oncopersistnet.annotate(adata, model)
    rng = np.random.default_rng(0)
    persister = (adata.obs["persister_label"] == "persister").to_numpy()
    adata.obsm["X_umap"] = rng.normal(size=(adata.n_obs, 2)) + 3 * persister[:, None]
    figure = oncopersistnet.pl.calls(adata)
    assert isinstance(figure, Figure)
    ax = figure.axes[0]
    drawn = {c.get_label().split(" (")[0]: len(c.get_offsets()) for c in ax.collections}
    expected = adata.obs["persister_label"].value_counts()
    assert drawn == {label: int(expected[label]) for label in expected.index}
    figure.savefig(tmp_path / "calls.png", dpi=80)  # renders without pyplot or a global backend
    assert (tmp_path / "calls.png").stat().st_size > 1000


def test_pl_calls_says_what_is_missing(model, cells_file):
    adata = ad.read_h5ad(cells_file)
    with pytest.raises(InputDataError, match="run oncopersistnet.annotate"):
        oncopersistnet.pl.calls(adata)
    oncopersistnet.annotate(adata, model)
    with pytest.raises(InputDataError, match=r"no obsm\['X_umap'\].*sc.tl.umap"):
        oncopersistnet.pl.calls(adata)


def test_import_is_light_and_annotate_never_imports_torch(onnx_model, cells_file, tmp_path):  # noqa: F811
    code = (
        "import sys, json\n"
        "import oncopersistnet\n"
        "light = sorted(m for m in ('anndata', 'onnxruntime', 'matplotlib', 'mlflow') if m in sys.modules)\n"
        "import anndata as ad\n"
        f"adata = ad.read_h5ad({str(cells_file)!r})\n"
        f"oncopersistnet.annotate(adata, {str(onnx_model)!r})\n"
        "assert 'persister_label' in adata.obs\n"
        "torch = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print(json.dumps({'light': light, 'torch': torch}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"light": [], "torch": []}


def test_a_registry_alias_is_pinned_and_its_version_recorded(onnx_model, cells_file, tmp_path, monkeypatch):  # noqa: F811
    """A real sqlite MLflow store: the champion alias is resolved to its version, which ``uns`` names;
    ``tracking_uri=`` is the caller's explicit choice of store, and model=None means that champion."""
    import shutil

    import mlflow
    from mlflow import MlflowClient

    from oncopersistnet.config import params_with, shipped_params
    from oncopersistnet.registry import promote

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(uri)  # the caller's store (annotate's tracking_uri= below does the same)
    client = MlflowClient()
    client.create_registered_model("api-test")
    for i in (1, 2):
        (tmp_path / f"m{i}").mkdir()
        shutil.copyfile(onnx_model, tmp_path / f"m{i}" / "model.onnx")
        client.create_model_version("api-test", source=(tmp_path / f"m{i}").as_uri())
    promote("api-test", "2", "the test's champion")
    adata = ad.read_h5ad(cells_file)
    params = params_with(shipped_params(), {"register": {"model_name": "api-test"}})
    oncopersistnet.annotate(adata, params=params, tracking_uri=uri)
    uns = adata.uns["oncopersistnet"]
    assert (uns["model"], uns["registered_name"], uns["registered_version"]) == (
        "models:/api-test@champion",
        "api-test",
        "2",
    )
    assert uns["label_counts"]["no_call"] == 3
