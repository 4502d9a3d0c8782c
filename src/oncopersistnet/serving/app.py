"""``oncopersistnet serve``: classify cells over HTTP with the registered champion.

The model is resolved once at start (``models:/<name>@champion`` by default) and
held by one onnxruntime session; ``POST /reload`` re-resolves the reference, so
a newly promoted champion is served without a restart.

Under load (see :mod:`oncopersistnet.serving.limits` for the body and connection
limits): a request's body is read first, on the event loop, without holding
anything but its bytes; parsing, checking and scoring then take one of
``max_parallel`` slots and run in a worker thread, so at most that many bodies
are ever expanded into Python objects at once and the event loop stays free for
the other clients. Requests beyond the slots queue; they do not fail.

Bad requests get a 4xx whose message says what is wrong: malformed JSON, wrong
types or unknown fields 422, genes that do not match the model 422 with the
match figures, a body or batch over the limit 413 with the limit, a body too
slow 408, a /predict body that is not JSON 415, a missing token 401, a failed
reload 409. Answers never hold a stack trace, an exception's repr or a path on
the server (the log has the details); anything unexpected is a 500 with a
generic message. Paths in a request are never read: an ``.h5ad`` comes as the
request body, and JSON fields other than the documented ones are refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from scipy import sparse
from starlette.concurrency import run_in_threadpool

from oncopersistnet.data.readers import read_counts
from oncopersistnet.errors import InputDataError, OncoPersistNetError
from oncopersistnet.inference.align import GeneMatch, aligned_block, match_genes
from oncopersistnet.inference.calls import Calls, CallTally, rule_for
from oncopersistnet.inference.model import OnnxPersisterModel
from oncopersistnet.inference.predict import check_counts, score_block
from oncopersistnet.inference.signal import SignalFloors
from oncopersistnet.registry import is_store_uri, served_version_facts
from oncopersistnet.registry.resolve import load_model
from oncopersistnet.serving.limits import ByteBudget, GuardMiddleware, guarded_h11
from oncopersistnet.tracking import use_tracking_uri

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ServiceConfig:
    """What the service serves and the limits it enforces.

    ``model``: a registry URI (the CLI's default: the champion of ``register.model_name``), a run
    URI or an ``.onnx`` path. ``min_gene_fraction``, ``coverage`` (of the conformal sets),
    ``ood_warn_fraction`` and ``signal_floors`` (the no-call floors) have no default here: they
    are ``predict.*`` in params.yaml, the one place their values are written.
    """

    model: str
    min_gene_fraction: float
    coverage: float
    ood_warn_fraction: float
    signal_floors: SignalFloors
    tracking_uri: str | None = None  # the MLflow store, set once at start-up (create_app)
    max_body_bytes: int = 50 * 1024 * 1024
    max_cells: int = 20_000
    threads: int | None = None
    token: str | None = None
    max_parallel: int = 2  # requests parsed and scored at once; the others queue
    body_timeout_s: float = 60.0  # a request body must arrive within this
    idle_timeout_s: float = 10.0  # longest stall in a body; longest wait for a request head
    limit_concurrency: int = 256  # open connections (beyond: 503 from uvicorn)
    # raw bodies over 1 MiB held at once (default 2 x max_parallel x max_body_bytes)
    body_budget_bytes: int | None = None

    def budget(self) -> int:
        return max(self.body_budget_bytes or 2 * self.max_parallel * self.max_body_bytes, self.max_body_bytes)


# Reachable without the token: liveness and the API's description (no data, no model facts).
PUBLIC_PATHS = frozenset({"/health", "/docs", "/openapi.json"})
# An .h5ad's datasets may hold at most this many times the body limit once decompressed.
H5AD_EXPANSION_LIMIT = 16


class CellMaps(BaseModel):
    """Cells as sparse gene -> raw count maps.

    A gene missing from a cell's map counts 0. ``panel`` lists the genes that were
    measured, when that is not every model gene: model genes outside the panel are
    then treated as missing (imputed), not as 0.
    """

    model_config = ConfigDict(extra="forbid")

    cells: list[dict[str, float]] = Field(
        min_length=1, description="one {gene: raw count} map per cell; absent genes are 0"
    )
    panel: list[str] | None = Field(
        default=None, description="genes measured (default: all the model's genes)"
    )
    cell_ids: list[str] | None = Field(default=None, description="optional ids, one per cell")


class CellMatrix(BaseModel):
    """Cells as a gene list plus a cells x genes matrix of raw counts."""

    model_config = ConfigDict(extra="forbid")

    genes: list[str] = Field(min_length=1)
    counts: list[list[float]] = Field(min_length=1, description="cells x genes raw counts")
    cell_ids: list[str] | None = None


PredictBody = TypeAdapter(Annotated[CellMatrix | CellMaps, Field(union_mode="left_to_right")])


def _inline_refs(schema: Any, defs: dict[str, Any]) -> Any:
    """A JSON schema with its ``$defs`` references written out (for the OpenAPI request body)."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inline_refs(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
        return {k: _inline_refs(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline_refs(v, defs) for v in schema]
    return schema


def _predict_openapi() -> dict[str, Any]:
    schema = PredictBody.json_schema()
    body = _inline_refs(schema, schema.get("$defs", {}))
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": body}}}}


def public_reference(reference: str) -> str:
    """What clients are told is served: a registry or run URI as is, a file by its name only."""
    return reference if is_store_uri(reference) else Path(reference).name


_PATH_LIKE = re.compile(r"(?:[A-Za-z]+:/+)?(?:~|\.{1,2})?(?:/[^\s/'\"(),;:]+){2,}/?")


def scrub(text: str, *paths: str | Path) -> str:
    """``text`` without the given paths (named generically) or anything else that looks like a server path."""
    for path in paths:
        text = text.replace(str(path), "uploaded .h5ad")
    return _PATH_LIKE.sub("<path>", text)


class ModelHolder:
    """The loaded model, swapped atomically on reload."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self.model, self.info = self._load()

    def _load(self) -> tuple[OnnxPersisterModel, dict[str, Any]]:
        model = load_model(self.config.model, threads=self.config.threads)
        rule = rule_for(model, coverage=self.config.coverage)
        info: dict[str, Any] = {
            "reference": public_reference(self.config.model),
            "n_genes": len(model.genes),
            "n_selected_genes": len(model.selected_genes),
            "threshold": model.threshold,
            "coverage": self.config.coverage,
            "ood_threshold": model.ood_threshold,
            "decision_rule": rule.describe(),
            "label_cutoffs": rule.cutoffs(),
            **{
                k: v
                for k, v in model.info().items()
                if k
                in ("data_hash", "params_hash", "git_commit", "architecture", "model_name", "mlflow_run_id")
            },
        }
        info |= served_version_facts(self.config.model, pinned=model.pinned_uri)
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


def _measured_match(model: OnnxPersisterModel, named: list[str], match: GeneMatch | None) -> GeneMatch:
    """The match of the genes a request measured (``match`` when it is already theirs); 422 when they
    hold no model gene, since no cell could then carry any signal."""
    if match is None:
        match = match_genes(
            np.asarray(named, dtype=str), model.genes, source="request", selected_genes=model.selected_genes
        )
    if match.n_matched == 0:
        raise InputDataError(
            f"request: no cell names any of the model's genes ({len(named):,} genes named; "
            f"{match.describe()}); send counts over the model's genes (GET /model lists how many)"
        )
    return match


def _score(
    model: OnnxPersisterModel,
    matrix: Any,
    genes: list[str],
    *,
    cell_ids: list[str],
    config: ServiceConfig,
    measured: list[str] | None = None,
) -> dict[str, Any]:
    """Check, align and score one request's cells; raise InputDataError on anything wrong.

    ``measured``: the genes the request actually measured when ``genes`` holds more (the map form's
    implicit zeros); the reported match figures count only those.
    """
    if len(cell_ids) != matrix.shape[0]:
        raise InputDataError(f"cell_ids: {len(cell_ids)} ids for {matrix.shape[0]} cells")
    check_counts(matrix, np.asarray(cell_ids), np.asarray(genes), source="request")
    match = match_genes(
        np.asarray(genes, dtype=str),
        model.genes,
        min_fraction=config.min_gene_fraction,
        source="request",
        selected_genes=model.selected_genes,
    )
    reported = (
        _measured_match(model, genes, match) if measured is None else _measured_match(model, measured, None)
    )
    rule = rule_for(model, coverage=config.coverage)
    calls = score_block(model, aligned_block(matrix, match), config.signal_floors, rule=rule)
    tally = CallTally()
    tally.add(calls)
    return {
        "cells": _json_cells(cell_ids, calls),
        "summary": tally.summary(rule, ood_warn_fraction=config.ood_warn_fraction),
        "genes_matched": reported.n_matched,
        "genes_expected": match.n_model_genes,
        "selected_genes_matched": reported.n_selected_matched,
        "threshold": model.threshold,
        "coverage": rule.coverage if rule.conformal is not None else None,
    }


def _json_value(value: object) -> object:
    """A JSON field: NaN (no probability, no distance) and "" (no reason, no set) are null."""
    if isinstance(value, np.floating | float):
        return None if np.isnan(value) else round(float(value), 6)
    if value is None:
        return None
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    return str(value) or None


def _json_cells(cell_ids: list[str], calls: Calls) -> list[dict[str, Any]]:
    """One object per cell with the fields of every door (the CSV's columns)."""
    columns = calls.columns()
    return [
        {"cell_id": cell_id} | {name: _json_value(values[i]) for name, values in columns.items()}
        for i, cell_id in enumerate(cell_ids)
    ]


def create_app(config: ServiceConfig, holder: ModelHolder | None = None) -> Any:
    """The FastAPI application (the model is loaded here, once)."""
    use_tracking_uri(config.tracking_uri)  # start-up is an entry point: it chooses the store
    holder = holder or ModelHolder(config)
    app = FastAPI(
        title="OncoPersistNet",
        version="1",
        description=(
            "Classify single cancer cells (raw scRNA-seq counts) as drug-tolerant persisters "
            "or non-persisters."
        ),
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.add_middleware(
        GuardMiddleware,
        token=config.token,
        public_paths=PUBLIC_PATHS,
        max_body_bytes=config.max_body_bytes,
        budget=ByteBudget(config.budget()),
        body_timeout_s=config.body_timeout_s,
        idle_timeout_s=config.idle_timeout_s,
    )
    _add_error_handlers(app)
    _add_info_routes(app, holder)
    _add_predict_routes(app, holder, config)
    _add_reload_route(app, holder, config)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every failure answers a status and a ``detail`` that names no server path and holds no trace."""

    @app.exception_handler(InputDataError)
    async def bad_input(_: Request, exc: InputDataError) -> JSONResponse:
        return JSONResponse({"detail": scrub(str(exc))}, status_code=422)

    @app.exception_handler(OncoPersistNetError)
    async def our_error(_: Request, exc: OncoPersistNetError) -> JSONResponse:
        return JSONResponse({"detail": scrub(str(exc))}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(exc.errors())}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error while serving a request")
        return JSONResponse({"detail": "internal error; the server log has the details"}, status_code=500)

    @app.exception_handler(_Refused)
    async def refused(_: Request, exc: _Refused) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)


def _add_info_routes(app: FastAPI, holder: ModelHolder) -> None:
    """``/health`` (public liveness) and ``/model`` (what is served)."""

    @app.get("/health", summary="liveness: the model is loaded")
    def health() -> dict[str, Any]:
        _, info = holder.current()
        return {"status": "ok", "model": info.get("reference"), "version": info.get("version")}

    @app.get("/model", summary="what is served: name, version, alias, genes, metrics")
    def model_info() -> dict[str, Any]:
        return holder.current()[1]


def _add_predict_routes(app: FastAPI, holder: ModelHolder, config: ServiceConfig) -> None:
    """``/predict`` (JSON) and ``/predict/h5ad``, sharing ``max_parallel`` slots for parsing and scoring."""
    slots = asyncio.Semaphore(config.max_parallel)

    @app.post(
        "/predict",
        summary="classify cells given as gene->count maps or as genes + matrix (JSON)",
        openapi_extra=_predict_openapi(),
    )
    async def predict(request: Request) -> Response:
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if kind != "application/json" and not kind.endswith("+json"):
            raise _Refused(
                415,
                f"send JSON with Content-Type: application/json (got {kind[:60]!r}); "
                "an .h5ad goes to /predict/h5ad",
            )
        body = await request.body()
        async with slots:
            return await run_in_threadpool(_predict_json, body, holder, config)

    @app.post(
        "/predict/h5ad",
        summary=(
            "classify the cells of an .h5ad sent as the request body "
            "(raw counts in X, layers['counts'] or .raw)"
        ),
        openapi_extra={
            "requestBody": {
                "content": {"application/x-hdf5": {"schema": {"type": "string", "format": "binary"}}}
            }
        },
    )
    async def predict_h5ad(request: Request) -> Response:
        body = await request.body()
        if not body:
            raise InputDataError("empty body: send the .h5ad file's bytes (curl --data-binary @cells.h5ad)")
        async with slots:
            return await run_in_threadpool(_predict_h5ad_bytes, body, holder, config)


def _add_reload_route(app: FastAPI, holder: ModelHolder, config: ServiceConfig) -> None:
    """``/reload``: serve a newly promoted champion; on failure keep the previous model and say so (409)."""

    @app.post("/reload", summary="re-resolve the model reference (serve a newly promoted champion)")
    def reload() -> Any:
        try:
            return holder.reload()
        except Exception:  # the store's paths and errors stay in the server log
            logger.exception("reload of %s failed; still serving the previous model", config.model)
            version = holder.current()[1].get("version")
            return JSONResponse(
                {
                    "detail": "reload failed, still serving the previous model "
                    f"(version {version or 'as loaded at start'}); the server log has the reason"
                },
                status_code=409,
            )


def make_server(
    config: ServiceConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "warning",
    app: Any = None,
) -> Any:
    """The uvicorn server ``oncopersistnet serve`` runs: the app, its connection limits, loopback by
    default."""
    import uvicorn

    return uvicorn.Server(
        uvicorn.Config(
            app or create_app(config),
            host=host,
            port=port,
            log_level=log_level,
            http=guarded_h11(config.idle_timeout_s),
            timeout_keep_alive=5,
            limit_concurrency=config.limit_concurrency,
            h11_max_incomplete_event_size=16 * 1024,  # request line and headers
        )
    )


class _Refused(Exception):
    """A request refused with ``status`` (413 over a limit, 415 not JSON) and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _check_size(n_cells: int, config: ServiceConfig) -> None:
    if n_cells > config.max_cells:
        raise _Refused(413, f"{n_cells} cells in one request; the limit is {config.max_cells}")


def _validation_detail(errors: list[Any]) -> str:
    """Readable ``field: problem`` lines; of a union's alternatives, the one the body came closest to."""
    groups: dict[str, list[Any]] = {}
    for error in errors:
        loc = [str(p) for p in error.get("loc", ()) if p != "body"]
        tag = loc[0] if loc and loc[0] in ("CellMatrix", "CellMaps") else ""
        groups.setdefault(tag, []).append(
            (".".join(loc[1:] if tag else loc) or "body", error.get("msg", "invalid"))
        )
    chosen = groups.get("") or min(groups.values(), key=len)
    return "; ".join(f"{where}: {msg}" for where, msg in chosen[:5])


def _json_answer(result: dict[str, Any]) -> Response:
    return Response(json.dumps(result).encode(), media_type="application/json")


def _predict_json(body: bytes, holder: ModelHolder, config: ServiceConfig) -> Response:
    """Parse, check and score one JSON body (in a worker thread, holding a slot)."""
    if not body:
        raise InputDataError(
            'empty body: send {"genes": [...], "counts": [[...]]} or {"cells": [{gene: count}, ...]}'
        )
    try:
        request = PredictBody.validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_input=False)) from None
    del body
    model, info = holder.current()
    if isinstance(request, CellMaps):
        _check_size(len(request.cells), config)
        panel = request.panel if request.panel is not None else model.genes
        genes = list(dict.fromkeys([*panel, *(g for cell in request.cells for g in cell)]))
        index = {g: i for i, g in enumerate(genes)}
        # Sparse: cells x (every gene any cell names) would be dense-huge for many distinct genes.
        rows = [row for row, cell in enumerate(request.cells) for _ in cell]
        columns = [index[gene] for cell in request.cells for gene in cell]
        values = np.array([value for cell in request.cells for value in cell.values()], dtype=np.float32)
        matrix = sparse.csr_matrix((values, (rows, columns)), shape=(len(request.cells), len(genes)))
        # What the request measured: the panel, or the genes its cells name; not the implicit zeros.
        measured = list(dict.fromkeys([*(request.panel or []), *(g for cell in request.cells for g in cell)]))
    else:
        _check_size(len(request.counts), config)
        genes = request.genes
        widths = {len(row) for row in request.counts}
        if widths != {len(genes)}:
            raise InputDataError(
                f"counts: every row needs {len(genes)} values (one per gene); "
                f"got rows of {sorted(widths)[:5]}"
            )
        matrix = np.asarray(request.counts, dtype=np.float32)
        measured = None
    ids = request.cell_ids or [f"cell{i}" for i in range(matrix.shape[0])]
    del request
    return _json_answer(
        {"model": info.get("reference"), "version": info.get("version")}
        | _score(model, matrix, genes, cell_ids=ids, config=config, measured=measured)
    )


def _check_h5ad_volume(path: Path, limit: int) -> None:
    """Refuse an HDF5 file whose datasets would take over ``limit`` bytes once read (a compression bomb)."""
    import h5py

    total = 0
    linked: list[str] = []

    def add(name: str, item: Any) -> None:
        nonlocal total
        if isinstance(item, h5py.Dataset):
            # External storage and virtual datasets read other files on this server: never for an upload.
            if item.external or item.is_virtual:
                linked.append(name)
            total += int(item.size) * max(int(item.dtype.itemsize), 1)

    def link(name: str, item: Any) -> None:
        if isinstance(item, h5py.ExternalLink):
            linked.append(name)

    with h5py.File(path, "r") as store:
        store.visit_links(lambda name: link(name, store.get(name, getlink=True)))
        if not linked:
            store.visititems(add)
    if linked:
        raise InputDataError(
            f"the .h5ad refers to data outside itself ({linked[0]}); send a self-contained file"
        )
    if total > limit:
        raise _Refused(413, f"the .h5ad holds {total} bytes once decompressed; the limit is {limit}")


def _predict_h5ad_bytes(body: bytes, holder: ModelHolder, config: ServiceConfig) -> Response:
    """Read and score an uploaded .h5ad (in a worker thread, holding a slot); its path is never shown."""
    unreadable = (
        "the body is not a readable .h5ad file (send the file's bytes: curl --data-binary @cells.h5ad)"
    )
    model, info = holder.current()
    with tempfile.TemporaryDirectory(prefix="oncopersistnet-serve-") as folder:
        path = Path(folder) / "upload.h5ad"
        path.write_bytes(body)
        del body
        try:
            _check_h5ad_volume(path, H5AD_EXPANSION_LIMIT * config.max_body_bytes)
            adata = read_counts(path, require_integer=True)
        except _Refused:
            raise
        except InputDataError as exc:
            message = str(exc)
            logger.info("refused an uploaded .h5ad: %s", message)
            raise InputDataError(
                unreadable if "not a readable .h5ad" in message else scrub(message, path, folder)
            ) from None
        except Exception:  # h5py and anndata raise many types for a malformed file
            logger.info("refused an uploaded .h5ad", exc_info=True)
            raise InputDataError(unreadable) from None
        _check_size(adata.n_obs, config)
        matrix = adata.X
        genes = [str(g) for g in adata.var_names]
        ids = [str(c) for c in adata.obs_names]
        return _json_answer(
            {"model": info.get("reference"), "version": info.get("version")}
            | _score(model, matrix, genes, cell_ids=ids, config=config)
        )
