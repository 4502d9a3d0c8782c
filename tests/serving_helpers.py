"""The real HTTP service for tests: uvicorn in this process on 127.0.0.1, a small exported model.

``onnx_model`` is a fixture: import it into a test module (``from serving_helpers
import onnx_model``) and pytest finds it there.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from oncopersistnet.config import shipped_params
from oncopersistnet.inference.signal import SignalFloors
from oncopersistnet.serving import ServiceConfig

PREDICT = shipped_params().predict
SIGNAL_FLOORS = SignalFloors.from_params(PREDICT)


def service_config(**options: object) -> ServiceConfig:
    """A service with the project's ``predict.*`` values and the given options."""
    return ServiceConfig(
        min_gene_fraction=PREDICT.min_gene_fraction,
        coverage=PREDICT.coverage,
        ood_warn_fraction=PREDICT.ood_warn_fraction,
        signal_floors=SIGNAL_FLOORS,
        **options,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def onnx_model(fitted, trained, trust, tmp_path_factory):
    """The fixture network exported to ONNX (threshold 0.5)."""
    from oncopersistnet.export import export_onnx

    pre, _, _ = fitted
    path = tmp_path_factory.mktemp("serve") / "model.onnx"
    export_onnx(pre, trained.model, path, trust=trust, metadata={"threshold": 0.5, "data_hash": "test"})
    return path


def start(config: ServiceConfig):
    """Start the service as ``oncopersistnet serve`` does; (server, thread, url) once /health answers."""
    from oncopersistnet.serving import make_server

    port = free_port()
    server = make_server(config, host="127.0.0.1", port=port, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
    for _ in range(200):
        try:
            if requests.get(f"{url}/health", headers=headers, timeout=1).status_code == 200:
                return server, thread, url
        except requests.RequestException:  # not up yet, or slow to answer on a busy machine
            time.sleep(0.05)
    raise RuntimeError("service did not start")


def stop(server, thread) -> None:
    server.should_exit = True
    thread.join(timeout=10)


@contextmanager
def running(config: ServiceConfig) -> Iterator[str]:
    """The service's base URL while the block runs."""
    server, thread, url = start(config)
    try:
        yield url
    finally:
        stop(server, thread)
