"""``oncopersistnet serve``: classify cells over HTTP with the registered champion.

The model is resolved once at start (``models:/<name>@champion`` by default) and
held by one onnxruntime session; ``POST /reload`` re-resolves the reference, so
a newly promoted champion is served without a restart. Inference runs in
FastAPI's thread pool, so one slow request does not block the others.

Bad requests get a 4xx whose message says what is wrong: malformed JSON or
wrong types 422 (FastAPI's validation), genes that do not match the model 422
with the match figures, a body or batch over the limit 413 with the limit, a
missing token 401. Nothing a client sends reaches the server as an unhandled
exception: anything unexpected is a 500 with a generic message, never a stack
trace or a file path. Paths in a request are never read; an ``.h5ad`` comes as
the request body.
"""

from __future__ import annotations

import hmac
import logging
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from oncopersistnet.errors import InputDataError, ModelError, OncoPersistNetError
from oncopersistnet.inference.align import aligned_block, match_genes
from oncopersistnet.inference.model import OnnxPersisterModel
from oncopersistnet.inference.predict import check_counts, label_cells

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceConfig:
    """What the service serves and the limits it enforces."""

    model: str = "models:/oncopersistnet@champion"
    tracking_uri: str | None = None
    max_body_bytes: int = 50 * 1024 * 1024
    max_cells: int = 20_000
    min_gene_fraction: float = 0.5
    uncertain_band: tuple[float, float] = (0.35, 0.65)
    threads: int | None = None
    token: str | None = None


class CellMaps(BaseModel):
    """Cells as sparse gene -> raw count maps.

    A gene missing from a cell's map counts 0. ``panel`` lists the genes that were
    measured, when that is not every model gene: model genes outside the panel are
    then treated as missing (imputed), not as 0.
    """

    cells: list[dict[str, float]] = Field(min_length=1, description="one {gene: raw count} map per cell; absent genes are 0")
    panel: list[str] | None = Field(default=None, description="genes measured (default: all the model's genes)")
    cell_ids: list[str] | None = Field(default=None, description="optional ids, one per cell")


class CellMatrix(BaseModel):
    """Cells as a gene list plus a cells x genes matrix of raw counts."""

    genes: list[str] = Field(min_length=1)
    counts: list[list[float]] = Field(min_length=1, description="cells x genes raw counts")
    cell_ids: list[str] | None = None


class ModelHolder:
    """The loaded model, swapped atomically on reload."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self.model, self.info = self._load()

    def _load(self) -> tuple[OnnxPersisterModel, dict[str, Any]]:
        from oncopersistnet.inference.resolve import load_model

        model = load_model(self.config.model, threads=self.config.threads, tracking_uri=self.config.tracking_uri)
        info: dict[str, Any] = {
            "reference": self.config.model,
            "n_genes": len(model.genes),
            "n_selected_genes": len(model.selected_genes),
            "threshold": model.threshold,
            "uncertain_band": list(self.config.uncertain_band),
            **{k: v for k, v in model.info().items() if k in ("data_hash", "params_hash", "git_commit", "architecture", "model_name", "mlflow_run_id")},
        }
        info |= _registry_facts(self.config.model)
        return model, info

    def reload(self) -> dict[str, Any]:
        model, info = self._load()
        with self._lock:
            self.model, self.info = model, info
        logger.info("reloaded %s: version %s", self.config.model, info.get("version", "?"))
        return info

    def current(self) -> tuple[OnnxPersisterModel, dict[str, Any]]:
        with self._lock:
            return self.model, self.info


def _registry_facts(reference: str) -> dict[str, Any]:
    """Name, version, alias and card metrics of a ``models:/`` reference ({} for a file)."""
    if not reference.startswith("models:/"):
        return {}
    from mlflow import MlflowClient

    name, _, rest = reference[len("models:/"):].partition("@")
    client = MlflowClient()
    if rest:
        version = client.get_model_version_by_alias(name, rest)
        alias = rest
    else:
        name, _, number = reference[len("models:/"):].partition("/")
        version, alias = client.get_model_version(name, number), None
    metrics = {k: version.tags[k] for k in ("test_f1", "test_roc_auc", "comparison_f1", "comparison_roc_auc", "test_brier", "test_ece") if k in version.tags}
    return {"name": name, "version": str(version.version), "alias": alias, "metrics": metrics}


def _score(model: OnnxPersisterModel, matrix: Any, genes: list[str], cell_ids: list[str], config: ServiceConfig) -> dict[str, Any]:
    """Check, align and score one request's cells; raise InputDataError on anything wrong."""
    if len(cell_ids) != matrix.shape[0]:
        raise InputDataError(f"cell_ids: {len(cell_ids)} ids for {matrix.shape[0]} cells")
    check_counts(matrix, np.asarray(cell_ids), np.asarray(genes), "request")
    match = match_genes(np.asarray(genes, dtype=str), model.genes, config.min_gene_fraction, source="request", selected_genes=model.selected_genes)
    probability = model.predict_proba(aligned_block(matrix, match))
    labels = label_cells(probability, model.threshold, config.uncertain_band)
    return {
        "cells": [
            {"cell_id": c, "persister_probability": round(float(p), 6), "predicted_label": str(lab)}
            for c, p, lab in zip(cell_ids, probability, labels, strict=True)
        ],
        "genes_matched": match.n_matched,
        "genes_expected": match.n_model_genes,
        "selected_genes_matched": match.n_selected_matched,
        "threshold": model.threshold,
        "uncertain_band": list(config.uncertain_band),
    }


def create_app(config: ServiceConfig, holder: ModelHolder | None = None) -> Any:
    """The FastAPI application (the model is loaded here, once)."""
    holder = holder or ModelHolder(config)
    app = FastAPI(
        title="OncoPersistNet",
        version="1",
        description="Classify single cancer cells (raw scRNA-seq counts) as drug-tolerant persisters or non-persisters.",
    )

    @app.middleware("http")
    async def limits_and_token(request: Request, call_next: Any) -> Any:
        if config.token and request.url.path not in ("/health", "/docs", "/openapi.json"):
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given, config.token):
                return JSONResponse({"detail": "missing or wrong token (header: Authorization: Bearer <token>)"}, status_code=401)
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > config.max_body_bytes):
            return JSONResponse({"detail": f"request body over the limit of {config.max_body_bytes} bytes"}, status_code=413)
        return await call_next(request)

    @app.exception_handler(InputDataError)
    async def bad_input(_: Request, exc: InputDataError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(OncoPersistNetError)
    async def our_error(_: Request, exc: OncoPersistNetError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]]
        return JSONResponse({"detail": "; ".join(errors)}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error while serving a request")
        return JSONResponse({"detail": "internal error; the server log has the details"}, status_code=500)

    def _check_size(n_cells: int) -> None:
        if n_cells > config.max_cells:
            raise _TooLarge(f"{n_cells} cells in one request; the limit is {config.max_cells}")

    @app.exception_handler(_TooLarge)
    async def too_large(_: Request, exc: _TooLarge) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=413)

    @app.get("/health", summary="liveness: the model is loaded")
    def health() -> dict[str, Any]:
        _, info = holder.current()
        return {"status": "ok", "model": info.get("reference"), "version": info.get("version")}

    @app.get("/model", summary="what is served: name, version, alias, genes, metrics")
    def model_info() -> dict[str, Any]:
        return holder.current()[1]

    @app.post("/predict", summary="classify cells given as gene->count maps or as genes + matrix")
    def predict(body: CellMatrix | CellMaps) -> dict[str, Any]:
        model, info = holder.current()
        if isinstance(body, CellMaps):
            _check_size(len(body.cells))
            panel = body.panel if body.panel is not None else model.genes
            genes = list(dict.fromkeys([*panel, *(g for cell in body.cells for g in cell)]))
            index = {g: i for i, g in enumerate(genes)}
            matrix = np.zeros((len(body.cells), len(genes)), dtype=np.float32)
            for row, cell in enumerate(body.cells):
                for gene, value in cell.items():
                    matrix[row, index[gene]] = value
        else:
            _check_size(len(body.counts))
            genes = body.genes
            widths = {len(row) for row in body.counts}
            if widths != {len(genes)}:
                raise InputDataError(f"counts: every row needs {len(genes)} values (one per gene); got rows of {sorted(widths)}")
            matrix = np.asarray(body.counts, dtype=np.float32)
        ids = body.cell_ids or [f"cell{i}" for i in range(matrix.shape[0])]
        return {"model": info.get("reference"), "version": info.get("version")} | _score(model, matrix, genes, ids, config)

    @app.post(
        "/predict/h5ad",
        summary="classify the cells of an .h5ad sent as the request body (raw counts in X, layers['counts'] or .raw)",
        openapi_extra={"requestBody": {"content": {"application/x-hdf5": {"schema": {"type": "string", "format": "binary"}}}}},
    )
    async def predict_h5ad(request: Request) -> dict[str, Any]:
        body = await request.body()
        if len(body) > config.max_body_bytes:
            raise _TooLarge(f"request body over the limit of {config.max_body_bytes} bytes")
        if not body:
            raise InputDataError("empty body: send the .h5ad file's bytes (curl --data-binary @cells.h5ad)")
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(_predict_h5ad_bytes, body, holder, config, _check_size)

    @app.post("/reload", summary="re-resolve the model reference (serve a newly promoted champion)")
    def reload() -> dict[str, Any]:
        try:
            return holder.reload()
        except ModelError as exc:
            raise InputDataError(f"reload failed, still serving the previous model: {exc}") from exc

    return app


class _TooLarge(Exception):
    """A request over the body or batch limit (413)."""


def _predict_h5ad_bytes(body: bytes, holder: ModelHolder, config: ServiceConfig, check_size: Any) -> dict[str, Any]:
    from oncopersistnet.data.readers import read_counts

    model, info = holder.current()
    with tempfile.TemporaryDirectory(prefix="oncopersistnet-serve-") as folder:
        path = Path(folder) / "upload.h5ad"
        path.write_bytes(body)
        try:
            adata = read_counts(path, require_integer=True)
        except InputDataError as exc:  # do not echo the temporary path to the client
            raise InputDataError(str(exc).replace(str(path), "uploaded .h5ad")) from None
        check_size(adata.n_obs)
        matrix = adata.X
        genes = [str(g) for g in adata.var_names]
        ids = [str(c) for c in adata.obs_names]
        return {"model": info.get("reference"), "version": info.get("version")} | _score(model, matrix, genes, ids, config)
