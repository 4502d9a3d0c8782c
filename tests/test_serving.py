"""The HTTP service, for real: uvicorn on 127.0.0.1, real requests, malformed ones, a burst in parallel."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from conftest import dense
from serving_helpers import onnx_model, service_config, start, stop  # noqa: F401  (onnx_model is a fixture)

from oncopersistnet.inference.model import OnnxPersisterModel


@pytest.fixture(scope="module")
def service(onnx_model):
    server, thread, url = start(service_config(model=str(onnx_model), max_cells=50, max_body_bytes=200_000))
    yield url
    stop(server, thread)


def test_health_model_and_openapi(service, small_adata):
    assert requests.get(f"{service}/health").json()["status"] == "ok"
    info = requests.get(f"{service}/model").json()
    assert info["n_genes"] == small_adata.n_vars and info["threshold"] == 0.5
    paths = requests.get(f"{service}/openapi.json").json()["paths"]
    assert {"/predict", "/predict/h5ad", "/model", "/health", "/reload"} <= set(paths)


def test_predict_gives_the_same_probabilities_as_the_model(service, onnx_model, small_adata):
    cells = dense(small_adata.X[:5])
    genes = list(small_adata.var_names)
    expected = OnnxPersisterModel(onnx_model).predict_proba(cells.astype(np.float32))
    matrix = requests.post(
        f"{service}/predict", json={"genes": genes, "counts": cells.tolist(), "cell_ids": list("abcde")}
    ).json()
    assert [c["cell_id"] for c in matrix["cells"]] == list("abcde")
    assert np.allclose([c["persister_probability"] for c in matrix["cells"]], expected, atol=1e-5)
    maps = [
        {g: v for g, v in zip(genes, row, strict=True) if v} for row in cells
    ]  # sparse maps: zeros left out
    by_map = requests.post(f"{service}/predict", json={"cells": maps}).json()
    assert np.allclose([c["persister_probability"] for c in by_map["cells"]], expected, atol=1e-5)
    assert {c["predicted_label"] for c in by_map["cells"]} <= {"persister", "non-persister", "uncertain"}


def test_an_h5ad_upload_is_scored(service, small_adata, tmp_path):
    path = tmp_path / "cells.h5ad"
    small_adata[:7].write_h5ad(path)
    response = requests.post(
        f"{service}/predict/h5ad", data=path.read_bytes(), headers={"Content-Type": "application/x-hdf5"}
    )
    assert response.status_code == 200 and len(response.json()["cells"]) == 7
    garbage = requests.post(f"{service}/predict/h5ad", data=b"not an hdf5 file at all")
    assert (
        garbage.status_code == 422
        and "upload" not in garbage.json()["detail"].lower()
        or "/tmp" not in garbage.json()["detail"]
    )


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"genes": ["ENSG00000000001", "ENSG00000000002"], "counts": [[1, 2]]},
            422,
            "0 of",
        ),  # unknown genes: match figures
        ({"genes": ["A", "B"], "counts": [[1, 2, 3]]}, 422, "every row needs 2 values"),
        ({"genes": ["A"], "counts": [["many"]]}, 422, "counts"),  # wrong type
        ({"cells": "not a list"}, 422, "cells"),
        ({"cells": []}, 422, "cells"),
        ({"genes": ["A"], "counts": [[1]] * 51}, 413, "limit is 50"),
        ({"genes": ["A"], "counts": [[-1]]}, 422, "negative count"),
    ],
)
def test_bad_requests_get_a_4xx_that_says_why(service, small_adata, body, status, message):
    if (
        "ENSG" not in json.dumps(body)
        and body.get("genes") == ["A"]
        and status != 413
        and "many" not in json.dumps(body)
    ):
        body = {"genes": [small_adata.var_names[0]], "counts": body["counts"]}
    response = requests.post(f"{service}/predict", json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert "Traceback" not in response.text


def test_malformed_json_and_oversized_bodies(service):
    broken = requests.post(
        f"{service}/predict", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 422
    huge = requests.post(
        f"{service}/predict", data=b"x" * 300_000, headers={"Content-Type": "application/json"}
    )
    assert huge.status_code == 413 and "200000 bytes" in huge.json()["detail"]


def test_a_burst_of_concurrent_requests_all_succeed(service, small_adata):
    genes = list(small_adata.var_names)
    rows = dense(small_adata.X[:20])

    def one(i: int) -> int:
        body = {"genes": genes, "counts": rows[i % 20 : i % 20 + 3].tolist()}
        return requests.post(f"{service}/predict", json=body, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(one, range(120)))
    assert codes == [200] * 120
    assert requests.get(f"{service}/health").status_code == 200  # still up


def test_reload_and_token(onnx_model, small_adata):
    server, thread, url = start(service_config(model=str(onnx_model), token="s3cret"))
    try:
        assert requests.get(f"{url}/health").status_code == 200  # liveness needs no token
        assert requests.get(f"{url}/model").status_code == 401
        headers = {"Authorization": "Bearer s3cret"}
        assert requests.get(f"{url}/model", headers=headers).json()["n_genes"] == small_adata.n_vars
        assert requests.post(f"{url}/reload", headers=headers).status_code == 200
    finally:
        stop(server, thread)
