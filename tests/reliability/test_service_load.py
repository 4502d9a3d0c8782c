"""The HTTP service under a bounded local load: many clients, malformed requests, big bodies, slow clients.

The real app in uvicorn on 127.0.0.1 with a small exported model. Asserts status
codes, counts, answers and loose memory bounds, never timings (those are in
benchmarks/bench_serve.py).
"""

from __future__ import annotations

import json
import random
import select
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import psutil
import pytest
import requests
from conftest import dense
from serving_helpers import onnx_model, running, service_config  # noqa: F401  (onnx_model is a fixture)

from oncopersistnet.inference.model import OnnxPersisterModel

MIB = 1024 * 1024
JSON = {"Content-Type": "application/json"}
H5AD = {"Content-Type": "application/x-hdf5"}


@dataclass
class Call:
    """One request of the mixed stream and what it must get back."""

    kind: str
    path: str
    body: bytes
    headers: dict[str, str]
    status: int
    detail: str = ""  # a fragment the 4xx detail must contain
    rows: list[int] | None = None  # fixture rows scored, for a 200


def _mixed_calls(adata, n: int, folder, seed: int = 0) -> list[Call]:
    """``n`` requests, about half valid (JSON matrix, JSON maps, .h5ad) and half malformed in 14 ways."""
    genes = list(adata.var_names)
    counts = dense(adata.X)
    adata[:3].write_h5ad(folder / "three.h5ad")
    h5ad = (folder / "three.h5ad").read_bytes()
    rng = random.Random(seed)

    def matrix(rows: list[int]) -> bytes:
        return json.dumps(
            {"genes": genes, "counts": counts[rows].tolist(), "cell_ids": [f"c{r}" for r in rows]}
        ).encode()

    def maps(rows: list[int]) -> bytes:
        cells = [{g: v for g, v in zip(genes, counts[r], strict=True) if v} for r in rows]
        return json.dumps({"cells": cells, "cell_ids": [f"c{r}" for r in rows]}).encode()

    def one_gene(values: list) -> bytes:
        return json.dumps({"genes": [genes[0]], "counts": [[v] for v in values]}).encode()

    malformed = [
        lambda: Call("bad json", "/predict", b'{"genes": [', JSON, 422, "JSON"),
        lambda: Call("wrong type", "/predict", one_gene(["many"]), JSON, 422, "counts"),
        lambda: Call(
            "unknown genes",
            "/predict",
            json.dumps({"genes": ["NOPE1", "NOPE2"], "counts": [[1, 2]]}).encode(),
            JSON,
            422,
            "0 of",
        ),
        lambda: Call("too many cells", "/predict", one_gene([1] * 51), JSON, 413, "limit is 50"),
        lambda: Call("over-size body", "/predict", b"[" + b"1," * 110_000 + b"1]", JSON, 413, "200000 bytes"),
        lambda: Call("non-integer", "/predict", one_gene([1.5]), JSON, 422, "non-integer"),
        lambda: Call("negative", "/predict", one_gene([-3]), JSON, 422, "negative count"),
        lambda: Call("NaN string", "/predict", one_gene(["NaN"]), JSON, 422, "non-finite"),
        lambda: Call("empty cells", "/predict", b'{"cells": []}', JSON, 422, "cells"),
        lambda: Call(
            "empty counts",
            "/predict",
            json.dumps({"genes": genes[:2], "counts": []}).encode(),
            JSON,
            422,
            "counts",
        ),
        lambda: Call(
            "ragged rows",
            "/predict",
            json.dumps({"genes": genes[:2], "counts": [[1, 2, 3]]}).encode(),
            JSON,
            422,
            "every row needs 2 values",
        ),
        lambda: Call(
            "garbage h5ad", "/predict/h5ad", bytes(rng.randrange(256) for _ in range(500)), H5AD, 422, ".h5ad"
        ),
        lambda: Call("empty h5ad", "/predict/h5ad", b"", H5AD, 422, "empty body"),
        lambda: Call(
            "wrong content type",
            "/predict",
            matrix([0]),
            {"Content-Type": "text/plain"},
            415,
            "application/json",
        ),
    ]
    calls = []
    for i in range(n):
        if i % 2:
            calls.append(malformed[(i // 2) % len(malformed)]())
            continue
        rows = rng.sample(range(adata.n_obs), rng.randint(1, 5))
        form = (i // 2) % 5
        if form == 4:
            calls.append(Call("h5ad", "/predict/h5ad", h5ad, H5AD, 200, rows=[0, 1, 2]))
        else:
            calls.append(
                Call(
                    "matrix" if form < 3 else "maps",
                    "/predict",
                    (matrix if form < 3 else maps)(rows),
                    JSON,
                    200,
                    rows=rows,
                )
            )
    return calls


def _rss_sampler(stop: threading.Event, peak: list[int]) -> None:
    me = psutil.Process()
    while not stop.is_set():
        peak[0] = max(peak[0], me.memory_info().rss)
        time.sleep(0.02)


def _send_all(url: str, calls: list[Call], clients: int) -> list[tuple[int, dict]]:
    local = threading.local()

    def send(call: Call) -> tuple[int, dict]:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        response = local.session.post(url + call.path, data=call.body, headers=call.headers, timeout=120)
        return response.status_code, response.json()

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(send, calls))


def test_fifty_clients_and_a_mixed_stream_of_valid_and_malformed_requests(onnx_model, small_adata, tmp_path):
    expected = OnnxPersisterModel(onnx_model).predict_proba(dense(small_adata.X).astype(np.float32))
    calls = _mixed_calls(small_adata, 2400, tmp_path)
    config = service_config(model=str(onnx_model), max_cells=50, max_body_bytes=200_000)
    with running(config) as url:
        _send_all(url, calls[:100], 10)  # warm-up: first allocations of the session and the pools
        before = psutil.Process().memory_info().rss
        peak, stop = [before], threading.Event()
        sampler = threading.Thread(target=_rss_sampler, args=(stop, peak), daemon=True)
        sampler.start()
        answers = _send_all(url, calls, 50)
        stop.set()
        sampler.join()
        assert requests.get(f"{url}/health", timeout=10).status_code == 200

    statuses = [status for status, _ in answers]
    assert not [s for s in statuses if s >= 500], "5xx under load"
    wrong = [(c.kind, c.status, s, a) for c, (s, a) in zip(calls, answers, strict=True) if s != c.status]
    assert not wrong, wrong[:5]
    for call, (status, answer) in zip(calls, answers, strict=True):
        if status == 200:
            got = [cell["persister_probability"] for cell in answer["cells"]]
            assert np.allclose(got, expected[call.rows], atol=1e-5), call.kind
        else:
            detail = answer["detail"]
            assert isinstance(detail, str) and call.detail in detail, (call.kind, detail)
            assert "Traceback" not in detail and "/tmp" not in detail
    assert statuses.count(200) == 1200 and len(statuses) == 2400
    assert (peak[0] - before) / MIB < 500, f"RSS grew by {(peak[0] - before) / MIB:.0f} MiB"


def test_fifty_large_bodies_at_once_are_parsed_a_few_at_a_time(onnx_model, small_adata):
    """50 clients each send a ~3 MB JSON matrix at the same moment; memory stays within a few bodies'
    worth."""
    genes = list(small_adata.var_names)
    rows = np.asarray(dense(small_adata.X)[:100], dtype=int)
    body = json.dumps({"genes": genes, "counts": np.tile(rows, (40, 1)).tolist()}).encode()  # 4,000 cells
    assert 2 * MIB < len(body) < 4 * MIB
    config = service_config(model=str(onnx_model), max_cells=5_000, max_body_bytes=4 * MIB, max_parallel=2)
    with running(config) as url:
        requests.post(f"{url}/predict", data=body, headers=JSON, timeout=60).raise_for_status()  # warm-up
        before = psutil.Process().memory_info().rss
        peak, stop = [before], threading.Event()
        sampler = threading.Thread(target=_rss_sampler, args=(stop, peak), daemon=True)
        sampler.start()
        barrier = threading.Barrier(50)

        def send(_: int) -> tuple[int, int]:
            barrier.wait()
            response = requests.post(f"{url}/predict", data=body, headers=JSON, timeout=300)
            return response.status_code, len(response.json().get("cells", []))

        with ThreadPoolExecutor(50) as pool:
            results = list(pool.map(send, range(50)))
        stop.set()
        sampler.join()
    assert results == [(200, 4000)] * 50
    grown = (peak[0] - before) / MIB
    # 50 raw bodies are ~150 MiB; parsed all at once they take several GiB.
    assert grown < 500, f"RSS grew by {grown:.0f} MiB while 50 large bodies were served"


def _raw_request(port: int, head: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.sendall(head.encode())
    return sock


def _read_status(sock: socket.socket) -> tuple[int, str]:
    data = b""
    try:
        while b"\r\n\r\n" not in data or not data.endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        pass
    if not data:
        return 0, ""
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode(errors="replace")


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(15)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


@pytest.mark.parametrize("path", ["/predict", "/predict/h5ad"])
def test_a_chunked_body_over_the_limit_is_refused_while_it_is_read(onnx_model, path):
    config = service_config(model=str(onnx_model), max_body_bytes=200_000)
    with running(config) as url:
        port = int(url.rsplit(":", 1)[1])
        sock = _raw_request(
            port,
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n",
        )
        chunk = b"1," * 32_768
        for _ in range(4):  # 256 KiB, more than the limit, and no closing chunk: the body never ends
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        sock.settimeout(15)
        status, body = _read_status(sock)
        sock.close()
        assert status == 413, body
        assert "200000 bytes" in json.loads(body)["detail"]
        assert requests.get(f"{url}/health", timeout=5).status_code == 200


def test_slow_clients_do_not_block_the_others(onnx_model, small_adata):
    """Slow uploaders and clients that never finish their headers; normal requests go on, the slow ones
    are cut off."""
    genes = list(small_adata.var_names)
    body = {"genes": genes, "counts": dense(small_adata.X[:2]).tolist()}
    config = service_config(
        model=str(onnx_model), max_parallel=1, body_timeout_s=10, idle_timeout_s=5
    )  # loose: a busy CI machine
    with running(config) as url:
        port = int(url.rsplit(":", 1)[1])
        uploaders = [
            _raw_request(
                port,
                "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: 100000\r\n\r\n",
            )
            for _ in range(5)
        ]
        half_heads = [_raw_request(port, "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Le") for _ in range(5)]
        silent = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(5)]
        stop = threading.Event()

        def trickle() -> None:
            while not stop.is_set():
                for sock, byte in [(s, b" ") for s in uploaders] + [
                    (s, b"n") for s in half_heads
                ]:  # "n": a header name that never ends
                    if not select.select([sock], [], [], 0)[0]:  # stop once the server has answered or closed
                        sock.sendall(byte)
                time.sleep(0.3)

        trickler = threading.Thread(target=trickle, daemon=True)
        trickler.start()
        try:
            with ThreadPoolExecutor(8) as pool:
                codes = list(
                    pool.map(
                        lambda _: requests.post(f"{url}/predict", json=body, timeout=30).status_code,
                        range(40),
                    )
                )
            assert codes == [200] * 40  # while 15 slow clients hold connections
            # The slow uploaders get 408 once their body is late; the others are closed.
            answers = [_read_status(sock) for sock in uploaders]
            assert [status for status, _ in answers] == [408] * 5, answers
            assert all(_closed_by_server(sock) for sock in half_heads + silent)
        finally:
            stop.set()
            trickler.join()
            for sock in uploaders + half_heads + silent:
                sock.close()
        assert requests.post(f"{url}/predict", json=body, timeout=30).status_code == 200
