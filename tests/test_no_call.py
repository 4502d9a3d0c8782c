"""No call without signal: each no-call reason through the CLI and over HTTP, and ``genes_matched``."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import requests
from conftest import CALL_RULE, dense
from scipy import sparse
from serving_helpers import onnx_model, service_config, start, stop  # noqa: F401  (onnx_model is a fixture)

from oncopersistnet.cli import main
from oncopersistnet.export import export_onnx
from oncopersistnet.inference import OnnxPersisterModel, predict_file

ALL_THREE = (
    "0 counts over model genes < predict.min_counts 20; "
    "0 detected model genes < predict.min_detected_genes 10; "
    "0 detected selected genes < predict.min_detected_selected_genes 5"
)


@pytest.fixture(scope="module")
def selected_model(fitted, trained, trust, tmp_path_factory):
    """The fixture network exported with its 150 selected genes of 300."""
    pre, _, _ = fitted
    path = tmp_path_factory.mktemp("nocall") / "model.onnx"
    selected = [str(g) for g in pre.genes_[pre.selected_]]
    export_onnx(
        pre, trained.model, path, trust=trust, metadata={"threshold": 0.5, "selected_genes": selected}
    )
    return path


def _cells_file(path, small_adata, model):
    """8 normal cells, then: all zero, 12 counts on 12 genes, 30 counts on 3 genes, 36 counts on
    12 unselected genes, and 100 counts on a gene the model does not know."""
    genes = list(small_adata.var_names)
    selected = [genes.index(g) for g in model.selected_genes]
    unselected = [j for j in range(len(genes)) if genes[j] not in set(model.selected_genes)]
    odd = np.zeros((5, len(genes) + 1), dtype=np.float32)
    odd[1, selected[:12]] = 1
    odd[2, selected[:3]] = 10
    odd[3, unselected[:12]] = 3
    odd[4, -1] = 100
    normal = np.hstack([dense(small_adata.X[:8]), np.zeros((8, 1))])
    ids = [f"n{i}" for i in range(8)] + ["zero", "shallow", "narrow", "unselected", "foreign"]
    adata = ad.AnnData(
        X=sparse.csr_matrix(np.vstack([normal, odd]).astype(np.float32)),
        obs=pd.DataFrame(index=ids),
        var=pd.DataFrame(index=[*genes, "NOTAGENE1"]),
    )
    adata.write_h5ad(path)
    return path


def test_each_no_call_reason_through_the_cli(selected_model, small_adata, tmp_path, capsys):
    model = OnnxPersisterModel(selected_model)
    source = _cells_file(tmp_path / "cells.h5ad", small_adata, model)
    out, obs = tmp_path / "out.parquet", tmp_path / "annotated.h5ad"
    args = ["predict", "--input", str(source), "--output", str(out), "--model", str(selected_model)]
    assert main([*args, "--no-progress", "--obs-output", str(obs)]) == 0
    table = pd.read_parquet(out).set_index("cell_id")
    reasons = table["no_call_reason"].to_dict()
    assert {k: v for k, v in reasons.items() if v} == {
        "zero": ALL_THREE,
        "shallow": "12 counts over model genes < predict.min_counts 20",
        "narrow": "3 detected model genes < predict.min_detected_genes 10; "
        "3 detected selected genes < predict.min_detected_selected_genes 5",
        "unselected": "0 detected selected genes < predict.min_detected_selected_genes 5",
        "foreign": ALL_THREE,
    }
    no_call = table.index.isin(["zero", "shallow", "narrow", "unselected", "foreign"])
    assert (table.loc[no_call, "predicted_label"] == "no_call").all()
    assert table.loc[no_call, "persister_probability"].isna().all()
    # Cells with signal: exactly today's output (scored without floors).
    today = tmp_path / "today.parquet"
    predict_file(model, source, today, progress=False, **CALL_RULE)
    before = pd.read_parquet(today).set_index("cell_id")
    assert np.array_equal(
        table.loc[~no_call, "persister_probability"].to_numpy(), before.loc[~no_call, "persister_probability"]
    )
    assert table.loc[~no_call, "predicted_label"].tolist() == before.loc[~no_call, "predicted_label"].tolist()
    annotated = ad.read_h5ad(obs)
    assert annotated.obs["persister_label"].tolist() == table["predicted_label"].tolist()
    assert annotated.obs["persister_no_call_reason"].tolist() == table["no_call_reason"].tolist()
    assert np.isnan(annotated.obs["persister_probability"].to_numpy()[no_call]).all()
    summary = capsys.readouterr().out
    assert '"no_calls": 5' in summary


def test_cli_floors_can_be_overridden_and_are_checked(selected_model, small_adata, tmp_path):
    model = OnnxPersisterModel(selected_model)
    source = _cells_file(tmp_path / "cells.h5ad", small_adata, model)
    out = tmp_path / "out.csv"
    args = ["predict", "--input", str(source), "--output", str(out), "--model", str(selected_model)]
    floors = ["--min-counts", "10", "--min-detected-genes", "3", "--min-detected-selected-genes", "0"]
    assert main([*args, "--no-progress", *floors]) == 0
    table = pd.read_csv(out, keep_default_na=False).set_index("cell_id")
    called = table[table["no_call_reason"] == ""].index.tolist()
    assert called == [f"n{i}" for i in range(8)] + ["shallow", "narrow", "unselected"]
    assert table.loc["zero", "persister_probability"] == ""  # an empty CSV field
    assert main([*args, "--min-counts", "-1"]) == 1


@pytest.fixture(scope="module")
def service(onnx_model):
    server, thread, url = start(service_config(model=str(onnx_model)))
    yield url
    stop(server, thread)


def test_http_request_naming_no_model_gene_is_refused(service, small_adata):
    for body in ({"cells": [{}]}, {"cells": [{"NOTAGENE1": 5}, {}]}):
        answer = requests.post(f"{service}/predict", json=body)
        assert answer.status_code == 422
        assert f"0 of {small_adata.n_vars} model genes found" in answer.json()["detail"]
    detail = requests.post(f"{service}/predict", json={"cells": [{"NOTAGENE1": 5}]}).json()["detail"]
    assert "1 genes named" in detail


def test_http_mix_of_a_normal_and_an_empty_cell(service, onnx_model, small_adata):
    genes = list(small_adata.var_names)
    row = dense(small_adata.X[:1])[0]
    normal = {g: float(v) for g, v in zip(genes, row, strict=True) if v}
    answer = requests.post(f"{service}/predict", json={"cells": [normal, {}]})
    assert answer.status_code == 200
    result = answer.json()
    expected = OnnxPersisterModel(onnx_model).predict_proba(row[None, :].astype(np.float32))[0]
    first, second = result["cells"]
    assert first["persister_probability"] == round(float(expected), 6) and first["no_call_reason"] is None
    assert second == {
        "cell_id": "cell1",
        "persister_probability": None,
        "predicted_label": "no_call",
        "prediction_set": None,
        "out_of_distribution": None,
        "ood_distance": None,
        "no_call_reason": ALL_THREE,
    }
    assert result["genes_matched"] == len(normal)  # the genes named, not the implicit zeros
    panel = requests.post(f"{service}/predict", json={"cells": [normal], "panel": genes[:200]}).json()
    assert panel["genes_matched"] == len(set(genes[:200]) | set(normal))
