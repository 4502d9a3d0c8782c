"""The HTTP service's exposure: loopback by default, the token, nothing internal in answers, client paths
never read."""

from __future__ import annotations

import io
import json
import re
import shutil
import sys
import time

import h5py
import numpy as np
import pytest
import requests
from conftest import dense
from serving_helpers import onnx_model, running, service_config  # noqa: F401  (onnx_model is a fixture)

from oncopersistnet.cli import build_parser

TOKEN = "s3cret-t0ken"
PUBLIC = {"/health", "/docs", "/openapi.json"}
JSON = {"Content-Type": "application/json"}
# What must never reach a client: a stack trace, an exception's repr, a file path on the server.
LEAKS = re.compile(
    r"Traceback|File \"|\w+(Error|Exception)\(|/tmp/|/work/|/home/|/root/|"
    r"/[\w.-]+\.onnx|\.db\b|upload\.h5ad|sqlite:"
)


def test_serve_binds_to_loopback_and_has_no_token_by_default():
    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.token is None
    defaults = service_config(model="model.onnx")
    assert defaults.token is None
    assert (args.max_parallel, args.max_connections) == (defaults.max_parallel, defaults.limit_concurrency)
    assert (args.body_timeout, args.idle_timeout) == (defaults.body_timeout_s, defaults.idle_timeout_s)


def test_a_compressed_h5ad_that_would_expand_past_the_limit_is_refused_unread(
    onnx_model, small_adata, tmp_path
):
    import anndata as ad

    bomb = ad.AnnData(X=np.zeros((5000, small_adata.n_vars), dtype=np.float32), var=small_adata.var[[]])
    bomb.write_h5ad(tmp_path / "bomb.h5ad", compression="gzip")
    data = (tmp_path / "bomb.h5ad").read_bytes()
    assert len(data) < 200_000  # the body is small; its X is 6 MB once decompressed
    with running(service_config(model=str(onnx_model), max_cells=50_000, max_body_bytes=200_000)) as url:
        response = requests.post(f"{url}/predict/h5ad", data=data, timeout=30)
    assert response.status_code == 413 and "decompressed" in response.json()["detail"]


def _h5ad_bytes(adata, folder) -> bytes:
    path = folder / "cells.h5ad"
    adata.write_h5ad(path)
    return path.read_bytes()


def test_with_a_token_every_endpoint_but_health_and_docs_needs_it(onnx_model, small_adata):
    body = {"genes": list(small_adata.var_names), "counts": dense(small_adata.X[:2]).tolist()}
    with running(service_config(model=str(onnx_model), token=TOKEN)) as url:
        routes = requests.get(f"{url}/openapi.json", timeout=10).json()["paths"]
        assert {"/predict", "/predict/h5ad", "/model", "/reload", "/health"} <= set(routes)
        wrong_headers = [
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": TOKEN},  # the token without the scheme
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": f"Bearer {TOKEN}x"},
            {"Authorization": "Bearer caf\u00e9"},  # not ASCII
        ]
        for path, methods in routes.items():
            for method in methods:
                for headers in wrong_headers:
                    response = requests.request(method, url + path, headers=headers, timeout=10)
                    if path in PUBLIC:
                        assert response.status_code != 401
                    else:
                        assert response.status_code == 401, (method, path, headers, response.status_code)
                        assert TOKEN not in response.text and not LEAKS.search(response.text)
                        assert response.headers.get("www-authenticate") == "Bearer"
        for path in ("/redoc", "/docs/oauth2-redirect", "/nothing-here"):  # no other public page
            assert requests.get(url + path, timeout=10).status_code in (401, 404)
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert requests.post(f"{url}/predict", json=body, headers=good, timeout=10).status_code == 200
        assert (
            requests.post(
                f"{url}/predict", json=body, headers={"authorization": f"bearer {TOKEN}"}, timeout=10
            ).status_code
            == 200
        )
        assert requests.get(f"{url}/docs", timeout=10).status_code == 200


def test_error_answers_hold_no_path_trace_or_exception(onnx_model, small_adata, tmp_path):
    model = tmp_path / "served" / "model.onnx"
    model.parent.mkdir()
    shutil.copy(onnx_model, model)
    genes = list(small_adata.var_names)
    wrong_genes = small_adata[:3].copy()
    wrong_genes.var_names = [f"NOTAGENE{i}" for i in range(wrong_genes.n_vars)]
    normalised = small_adata[:3].copy()
    normalised.X = np.log1p(dense(normalised.X)).astype(np.float32)
    hdf5_not_anndata = io.BytesIO()
    with h5py.File(hdf5_not_anndata, "w") as f:
        f["X"] = np.arange(10)
        f.create_group("obs")
    requests_to_make = [
        ("POST", "/predict/h5ad", b"\x89HDF\r\n\x1a\n" + b"\0" * 300, 422),  # an HDF5 signature, then nothing
        ("POST", "/predict/h5ad", hdf5_not_anndata.getvalue(), 422),
        ("POST", "/predict/h5ad", _h5ad_bytes(wrong_genes, tmp_path), 422),
        ("POST", "/predict/h5ad", _h5ad_bytes(normalised, tmp_path), 422),
        ("POST", "/predict/h5ad", _h5ad_bytes(small_adata[:60], tmp_path), 413),
        ("POST", "/predict", b'{"genes": [1, 2], "counts": [[1.5, 2]]}', 422),
        ("POST", "/predict", json.dumps({"genes": genes[:1], "counts": [[0.5]]}).encode(), 422),
        ("POST", "/predict", b"\xff\xfe garbage", 422),
        ("POST", "/predict", b"[]", 422),
        ("POST", "/predict", b'{"cells": [{"A": {"nested": 1}}]}', 422),
        ("POST", "/predict", b"x" * 300_000, 413),
        ("GET", "/predict", b"", 405),
    ]
    with running(service_config(model=str(model), max_cells=50, max_body_bytes=200_000)) as url:
        for method, path, data, status in requests_to_make:
            headers = JSON if path == "/predict" else {"Content-Type": "application/x-hdf5"}
            response = requests.request(method, url + path, data=data, headers=headers, timeout=30)
            assert response.status_code == status, (path, data[:40], response.text)
            assert isinstance(response.json()["detail"], str)
            assert not LEAKS.search(response.text), response.text
        for path in ("/health", "/model"):  # what is served is named, not where it lies
            answer = requests.get(url + path, timeout=10)
            assert answer.status_code == 200 and not LEAKS.search(answer.text), answer.text
        model.unlink()  # a reload that cannot find the model
        failed = requests.post(f"{url}/reload", timeout=30)
        assert 400 <= failed.status_code < 500 and "reload failed" in failed.json()["detail"]
        assert not LEAKS.search(failed.text), failed.text
        assert (
            requests.post(
                f"{url}/predict",
                json={"genes": genes, "counts": dense(small_adata.X[:1]).tolist()},
                timeout=10,
            ).status_code
            == 200
        )


@pytest.fixture()
def opened(monkeypatch):
    """Paths this process opens (Python's open, and .h5ad reads) while a test runs."""
    import oncopersistnet.data.readers as readers

    seen: list[str] = []
    recording = [True]

    def hook(event: str, args: tuple) -> None:
        if recording[0] and event == "open" and isinstance(args[0], str | bytes):
            seen.append(str(args[0]))

    sys.addaudithook(hook)  # cannot be removed: switched off after the test instead
    original = readers.read_h5ad

    def spy(path, *args, **kwargs):
        seen.append(str(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(readers, "read_h5ad", spy)
    yield seen
    recording[0] = False


def test_paths_sent_by_a_client_are_refused_and_not_read(onnx_model, small_adata, tmp_path, opened):
    secret = tmp_path / "server_side.h5ad"
    small_adata[:5].write_h5ad(secret)
    genes = list(small_adata.var_names)
    one_cell = dense(small_adata.X[:1]).tolist()
    with running(service_config(model=str(onnx_model))) as url:
        opened.clear()
        attempts = [
            ("/predict/h5ad", str(secret).encode(), {"Content-Type": "application/x-hdf5"}),
            ("/predict/h5ad", f"file://{secret}".encode(), {"Content-Type": "application/octet-stream"}),
            ("/predict", json.dumps({"path": str(secret)}).encode(), JSON),
            (
                "/predict",
                json.dumps({"input": str(secret), "genes": genes, "counts": one_cell}).encode(),
                JSON,
            ),
            ("/predict", json.dumps({"cells": str(secret)}).encode(), JSON),
            ("/predict", json.dumps(str(secret)).encode(), JSON),
        ]
        for path, data, headers in attempts:
            response = requests.post(url + path, data=data, headers=headers, timeout=30)
            assert 400 <= response.status_code < 500, (path, data, response.text)
            assert "cells" not in response.json() and str(secret) not in response.text
    assert not [p for p in opened if "server_side" in p], opened


def _points_outside(adata, folder, how: str, secret) -> bytes:
    """An .h5ad whose X is stored in another file on the server: HDF5 external storage or an external link."""
    path = folder / f"{how}.h5ad"
    adata.write_h5ad(path)
    with h5py.File(path, "a") as f:
        attrs = (
            dict(f["X"].attrs)
            if isinstance(f["X"], h5py.Dataset)
            else {"encoding-type": "array", "encoding-version": "0.2.0"}
        )
        del f["X"]
        if how == "external-storage":
            f.create_dataset(
                "X",
                shape=(adata.n_obs, adata.n_vars),
                dtype="<f4",
                external=[(str(secret), 0, h5py.h5f.UNLIMITED)],
            )
            f["X"].attrs.update(attrs)
        else:
            f["X"] = h5py.ExternalLink(str(secret), "/X")
    return path.read_bytes()


@pytest.mark.parametrize("how", ["external-storage", "external-link"])
def test_an_h5ad_pointing_at_server_files_is_refused_unread(onnx_model, small_adata, tmp_path, how):
    import anndata as ad

    cells = ad.AnnData(X=dense(small_adata.X[:3]).astype(np.float32), var=small_adata.var[[]])
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.full(3 * small_adata.n_vars, 7, dtype=np.float32).tobytes())
    if how == "external-link":
        with h5py.File(tmp_path / "secret.h5", "w") as f:
            f["X"] = np.full((3, small_adata.n_vars), 7, dtype=np.float32)
        secret = tmp_path / "secret.h5"
    data = _points_outside(cells, tmp_path, how, secret)
    with running(service_config(model=str(onnx_model))) as url:
        response = requests.post(
            f"{url}/predict/h5ad", data=data, headers={"Content-Type": "application/x-hdf5"}, timeout=30
        )
    assert response.status_code == 422, response.text
    assert "refers to data outside itself" in response.json()["detail"]
    assert not LEAKS.search(response.text), response.text


def test_gene_maps_naming_many_distinct_genes_stay_sparse(onnx_model, small_adata):
    """20,000 cells each naming its own unknown gene: a small body that a dense matrix would make 1.6 GB."""
    import psutil

    gene = small_adata.var_names[0]
    cells = [{gene: 1.0, f"UNKNOWN{i}": 1.0} for i in range(20_000)]
    body = json.dumps({"cells": cells, "panel": list(small_adata.var_names)}).encode()
    import threading

    process, peak, done = psutil.Process(), [0], threading.Event()

    def sample() -> None:  # the peak, not the end: numpy hands large blocks back to the OS when freed
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.005)

    with running(service_config(model=str(onnx_model), max_cells=20_000)) as url:
        before = process.memory_info().rss
        sampler = threading.Thread(target=sample)
        sampler.start()
        response = requests.post(f"{url}/predict", data=body, headers=JSON, timeout=120)
        done.set()
        sampler.join()
        grown = peak[0] - before
    assert response.status_code == 200, response.text[:300]
    assert len(response.json()["cells"]) == 20_000
    assert grown < 800 * 2**20, f"server grew by {grown / 2**20:.0f} MiB"
