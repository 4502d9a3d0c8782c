"""Latency and throughput of `oncopersistnet serve` under a bounded local load.

Starts the real service (its own process, uvicorn on 127.0.0.1, the exported
model) and sends it a fixed number of `POST /predict` requests from a fixed
number of concurrent clients: one cell per request (the interactive case) and
100 cells per request (a small batch). Every request is a real HTTP round trip
with JSON in and out. Reports p50/p99 latency, requests/s and cells/s, the
count of non-200 answers, and the server's peak RSS (VmHWM).

Then the *mixed load*: a fresh server (its own process, ``--max-body-mb 1
--max-cells 1000``) gets ``--mixed-requests`` requests (10,000) from
``--mixed-clients`` (50) concurrent clients, half of them valid (JSON matrix,
JSON maps, .h5ad upload) and half malformed in 14 ways (bad JSON, wrong types,
unknown genes, too many cells, a body over the limit, non-integer, negative and
NaN counts, empty lists, ragged rows, garbage and empty .h5ad, wrong content
type). It reports answers by class (2xx/4xx/5xx, connection errors), answers
other than the expected status, p50/p99 latency (all requests and valid ones),
requests/s and the server's peak RSS. The clients run in this process on the
same cores as the server.

Loopback only, bounded in requests and time. Run after `make run` (`make bench`
does); figures go to benchmarks/results/serve.json. Measurements, not assertions.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import requests

from oncopersistnet.atomic import write_json
from oncopersistnet.inference import OnnxPersisterModel
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.preprocessing.outputs import read_split_cells


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, server: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"serve exited with status {server.returncode}")
        try:
            if requests.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise SystemExit("serve did not answer /health in time")


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _load(url: str, bodies: list[dict], clients: int) -> dict[str, float]:
    """Send every body once from ``clients`` threads (one keep-alive session per thread)."""
    local = threading.local()

    def send(i: int) -> tuple[float, int]:
        if not hasattr(local, "session"):
            local.session = requests.Session()  # Session is not thread-safe: one per worker
        started = time.perf_counter()
        status = local.session.post(f"{url}/predict", json=bodies[i], timeout=60).status_code
        return time.perf_counter() - started, status

    send(0)  # warm-up
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(send, range(len(bodies))))
    elapsed = time.perf_counter() - started
    latency = np.array([r[0] for r in results]) * 1000
    cells = sum(len(b["counts"]) for b in bodies)
    return {
        "requests": len(bodies),
        "clients": clients,
        "cells_per_request": len(bodies[0]["counts"]),
        "non_200": int(sum(r[1] != 200 for r in results)),
        "p50_ms": round(float(np.percentile(latency, 50)), 2),
        "p99_ms": round(float(np.percentile(latency, 99)), 2),
        "requests_per_s": round(len(bodies) / elapsed, 1),
        "cells_per_s": round(cells / elapsed),
    }


def _mixed_bodies(
    genes: list[str], rows: list[list[float]], n: int, *, h5ad: bytes, seed: int = 0
) -> list[tuple[str, bytes, str, int]]:
    """``n`` (path, body, content type, expected status): half valid in 3 forms, half malformed in 14 ways."""
    rng = random.Random(seed)
    json_type, h5ad_type = "application/json", "application/x-hdf5"

    def matrix(take: list[int]) -> bytes:
        return json.dumps({"genes": genes, "counts": [rows[i] for i in take]}).encode()

    def maps(take: list[int]) -> bytes:
        return json.dumps(
            {"cells": [{g: v for g, v in zip(genes, rows[i], strict=True) if v} for i in take]}
        ).encode()

    def one_gene(values: list) -> bytes:
        return json.dumps({"genes": [genes[0]], "counts": [[v] for v in values]}).encode()

    malformed = [
        ("/predict", b'{"genes": [', json_type, 422),
        ("/predict", one_gene(["many"]), json_type, 422),
        ("/predict", json.dumps({"genes": ["NOPE1", "NOPE2"], "counts": [[1, 2]]}).encode(), json_type, 422),
        ("/predict", one_gene([1] * 1001), json_type, 413),
        ("/predict", b"[" + b"1," * 600_000 + b"1]", json_type, 413),  # 1.2 MB, over --max-body-mb 1
        ("/predict", one_gene([1.5]), json_type, 422),
        ("/predict", one_gene([-3]), json_type, 422),
        ("/predict", one_gene(["NaN"]), json_type, 422),
        ("/predict", b'{"cells": []}', json_type, 422),
        ("/predict", json.dumps({"genes": genes[:2], "counts": []}).encode(), json_type, 422),
        ("/predict", json.dumps({"genes": genes[:2], "counts": [[1, 2, 3]]}).encode(), json_type, 422),
        ("/predict/h5ad", bytes(rng.randrange(256) for _ in range(2000)), h5ad_type, 422),
        ("/predict/h5ad", b"", h5ad_type, 422),
        ("/predict", matrix([0]), "text/plain", 415),
    ]
    out = []
    for i in range(n):
        if i % 2:
            out.append(malformed[(i // 2) % len(malformed)])
            continue
        form = (i // 2) % 5
        take = rng.sample(range(len(rows)), rng.randint(1, 5))
        if form == 4:
            out.append(("/predict/h5ad", h5ad, h5ad_type, 200))
        else:
            out.append(("/predict", (matrix if form < 3 else maps)(take), json_type, 200))
    return out


def _mixed_load(url: str, calls: list[tuple[str, bytes, str, int]], clients: int) -> dict:
    local = threading.local()

    def send(call: tuple[str, bytes, str, int]) -> tuple[float, int, int]:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        path, body, kind, expected = call
        started = time.perf_counter()
        try:
            status = local.session.post(
                url + path, data=body, headers={"Content-Type": kind}, timeout=120
            ).status_code
        except requests.RequestException:
            local.session = requests.Session()
            status = 0  # no answer: connection refused, reset or timed out
        return time.perf_counter() - started, status, expected

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(send, calls))
    elapsed = time.perf_counter() - started
    latency = np.array([r[0] for r in results]) * 1000
    valid = np.array([r[2] == 200 for r in results])
    statuses = [r[1] for r in results]
    return {
        "requests": len(calls),
        "clients": clients,
        "valid_requests": int(valid.sum()),
        "answers_by_class": {
            "2xx": sum(200 <= s < 300 for s in statuses),
            "4xx": sum(400 <= s < 500 for s in statuses),
            "5xx": sum(s >= 500 for s in statuses),
            "no_answer": statuses.count(0),
        },
        "unexpected_status": sum(r[1] != r[2] for r in results),
        "p50_ms": round(float(np.percentile(latency, 50)), 2),
        "p99_ms": round(float(np.percentile(latency, 99)), 2),
        "valid_p50_ms": round(float(np.percentile(latency[valid], 50)), 2),
        "valid_p99_ms": round(float(np.percentile(latency[valid], 99)), 2),
        "requests_per_s": round(len(calls) / elapsed, 1),
        "seconds": round(elapsed, 1),
    }


def _start_server(model: str, threads: int, *extra: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "oncopersistnet.cli",
        "--log-level",
        "WARNING",
        "serve",
        "--model",
        model,
        "--port",
        str(port),
        "--threads",
        str(threads),
        *extra,
    ]
    server = subprocess.Popen(command)
    try:
        _wait_until_up(url, server)
    except BaseException:
        server.terminate()
        raise
    return server, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/oncopersistnet.onnx")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads of the service")
    parser.add_argument(
        "--mixed-requests", type=int, default=10_000, help="requests of the mixed load (0: skip it)"
    )
    parser.add_argument("--mixed-clients", type=int, default=50)
    parser.add_argument(
        "--skip-plain",
        action="store_true",
        help="run the mixed load only (keeps the plain loads of an earlier run)",
    )
    parser.add_argument("--output", default="benchmarks/results/serve.json")
    args = parser.parse_args()

    genes = OnnxPersisterModel(args.model).genes
    test = read_split_cells(ProjectPaths(Path(".")), "test")
    column = {g: i for i, g in enumerate(test.genes)}
    counts = test.X[:, [column[g] for g in genes]].toarray()
    rows = [[float(v) for v in row] for row in counts]

    def bodies(cells_per_request: int, n: int) -> list[dict]:
        return [
            {
                "genes": genes,
                "counts": [rows[(i * cells_per_request + j) % len(rows)] for j in range(cells_per_request)],
            }
            for i in range(n)
        ]

    results = (
        json.loads(Path(args.output).read_text()) if args.skip_plain and Path(args.output).exists() else {}
    )
    if not args.skip_plain:
        server, url = _start_server(args.model, args.threads)
        try:
            loads = [
                _load(url, bodies(1, args.requests), args.clients),
                _load(url, bodies(100, max(args.requests // 10, 1)), args.clients),
            ]
            peak = _peak_rss_mib(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
        results |= {
            "model_genes": len(genes),
            "service_threads": args.threads,
            "loads": loads,
            "server_peak_rss_mib": round(peak),
        }

    if args.mixed_requests:
        three = ad.AnnData(X=test.X[:3], var=pd.DataFrame(index=list(test.genes)))
        three.obs_names = [f"c{i}" for i in range(3)]
        with tempfile.TemporaryDirectory() as tmp:
            three.write_h5ad(Path(tmp) / "three.h5ad")
            h5ad = (Path(tmp) / "three.h5ad").read_bytes()
        calls = _mixed_bodies(genes, rows, args.mixed_requests, h5ad=h5ad)
        server, url = _start_server(args.model, args.threads, "--max-body-mb", "1", "--max-cells", "1000")
        try:
            _mixed_load(url, calls[:200], args.mixed_clients)  # warm-up
            warm = _peak_rss_mib(server.pid)
            mixed = _mixed_load(url, calls, args.mixed_clients)
            mixed |= {
                "server_peak_rss_after_warm_up_mib": round(warm),
                "server_peak_rss_mib": round(_peak_rss_mib(server.pid)),
            }
        finally:
            server.terminate()
            server.wait(timeout=30)
        results["mixed_load"] = mixed | {"server_limits": "--max-body-mb 1 --max-cells 1000"}
    write_json(args.output, results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
