"""Latency and throughput of `oncopersistnet serve` under a bounded local load.

Starts the real service (its own process, uvicorn on 127.0.0.1, the exported
model) and sends it a fixed number of `POST /predict` requests from a fixed
number of concurrent clients: one cell per request (the interactive case) and
100 cells per request (a small batch). Every request is a real HTTP round trip
with JSON in and out. Reports p50/p99 latency, requests/s and cells/s, the
count of non-200 answers, and the server's peak RSS (VmHWM). Loopback only,
bounded in requests and time. Run after `make run` (`make bench` does);
figures go to benchmarks/results/serve.json. Measurements, not assertions.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

from oncopersistnet.atomic import write_json
from oncopersistnet.inference import OnnxPersisterModel
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.stages.common import read_split_cells


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/oncopersistnet.onnx")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads of the service")
    parser.add_argument("--output", default="benchmarks/results/serve.json")
    args = parser.parse_args()

    genes = OnnxPersisterModel(args.model).genes
    test = read_split_cells(ProjectPaths(Path(".")), "test")
    column = {g: i for i, g in enumerate(test.genes)}
    counts = test.counts[:, [column[g] for g in genes]].toarray()
    rows = [[float(v) for v in row] for row in counts]

    def bodies(cells_per_request: int, n: int) -> list[dict]:
        return [
            {"genes": genes, "counts": [rows[(i * cells_per_request + j) % len(rows)] for j in range(cells_per_request)]}
            for i in range(n)
        ]

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "oncopersistnet.cli", "--log-level", "WARNING", "serve", "--model", args.model,
               "--port", str(port), "--threads", str(args.threads)]
    server = subprocess.Popen(command)
    try:
        _wait_until_up(url, server)
        loads = [
            _load(url, bodies(1, args.requests), args.clients),
            _load(url, bodies(100, max(args.requests // 10, 1)), args.clients),
        ]
        peak = _peak_rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    results = {"model_genes": len(genes), "service_threads": args.threads, "loads": loads, "server_peak_rss_mib": round(peak)}
    write_json(args.output, results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
