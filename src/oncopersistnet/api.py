"""``oncopersistnet.annotate``: score the cells of an AnnData in place, the way scanpy's tools do.

scanpy users hold their cells in memory (or backed) as an AnnData; writing a file and
shelling out to ``oncopersistnet predict`` only to read the rows back is friction. This
module scores ``adata`` through the very loop the command line and the HTTP service use
(:func:`~oncopersistnet.inference.predict.score_chunks`: ``check_counts``, ``match_genes``,
``aligned_block``, ``score_block``), so a cell gets the same probability, label and no-call
reason whichever door it came in by, and writes the answers into ``obs`` and ``uns``.

The MLflow store: a ``models:/`` or ``runs:/`` reference is resolved in the store MLflow
points at. A library must not choose that store on its own (ARCHITECTURE.md: only entry
points set it), so the caller does: ``mlflow.set_tracking_uri(...)`` or ``MLFLOW_TRACKING_URI``
beforehand, or ``tracking_uri=...`` here, which is the caller's own explicit choice and is
applied with :func:`~oncopersistnet.tracking.use_tracking_uri` only when given. An ``.onnx``
path or an already loaded :class:`OnnxPersisterModel` needs no store at all.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np

from oncopersistnet import __version__
from oncopersistnet.config import Params, load_params, project_params
from oncopersistnet.data.readers import counts_matrix
from oncopersistnet.errors import InputDataError
from oncopersistnet.inference.align import GeneMatch, match_genes
from oncopersistnet.inference.calls import CALL_LABELS, Calls, CallTally, rule_for
from oncopersistnet.inference.model import OnnxPersisterModel
from oncopersistnet.inference.predict import Scoring, log_summary, score_chunks
from oncopersistnet.inference.signal import SignalFloors
from oncopersistnet.inference.writers import obs_frame
from oncopersistnet.registry import champion_uri, is_model_uri, parse_model_uri
from oncopersistnet.registry.resolve import load_model
from oncopersistnet.tracking import use_tracking_uri

__all__ = ["LABEL_CATEGORIES", "UNS_KEY", "annotate"]

logger = logging.getLogger(__name__)

#: ``uns`` key of the run's figures, and the order of ``obs['persister_label']``'s categories.
UNS_KEY = "oncopersistnet"
LABEL_CATEGORIES = CALL_LABELS


def _params(params: Params | str | Path | None) -> Params:
    """``params`` as given, else ./params.yaml when present, else the project's own (as the CLI does)."""
    if isinstance(params, Params):
        return params
    if params is not None:
        return load_params(params)
    return project_params()


def _load(model: OnnxPersisterModel | str | Path | None, params: Params) -> tuple[OnnxPersisterModel, dict]:
    """The model and what is known of its registration (name and version for a ``models:/`` URI).

    An alias is resolved to its version first and that version is loaded, so the version
    recorded in ``uns`` is the one that scored the cells even if the alias moves meanwhile.
    """
    if isinstance(model, OnnxPersisterModel):
        return model, {"model": model.source}
    reference = str(model) if model is not None else champion_uri(params.register.model_name)
    loaded = load_model(reference)
    facts: dict[str, Any] = {"model": reference}
    if loaded.pinned_uri is not None and is_model_uri(loaded.pinned_uri):
        uri = parse_model_uri(loaded.pinned_uri)
        if uri.pinned:
            facts |= {"registered_name": uri.name, "registered_version": str(uri.version)}
    return loaded, facts


def _floors(signal_floors: SignalFloors | None, params: Params) -> SignalFloors:
    """The no-call floors: those given, else ``predict.*`` of params.yaml."""
    return signal_floors if signal_floors is not None else SignalFloors.from_params(params.predict)


def _check_not_empty(adata: ad.AnnData) -> None:
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise InputDataError(
            f"AnnData is empty ({adata.n_obs} cells x {adata.n_vars} genes): nothing to score"
        )


def _uns(
    facts: dict[str, Any], scoring: Scoring, *, counts_key: str, calls: Calls, warn: float
) -> dict[str, Any]:
    """What ``uns['oncopersistnet']`` records: the model, the decision rule and its coverage, the
    out-of-distribution threshold, the gene match and the counts of each answer."""
    match: GeneMatch = scoring.match
    tally = CallTally()
    tally.add(calls)
    summary = tally.summary(scoring.rule, ood_warn_fraction=warn)
    return {
        **facts,
        **{k: v for k, v in summary.items() if v is not None},
        "threshold": float(scoring.rule.threshold),
        "signal_floors": dataclasses.asdict(scoring.floors),
        "counts_source": counts_key,
        "genes_matched": match.n_matched,
        "genes_expected": match.n_model_genes,
        "selected_genes_matched": match.n_selected_matched,
        "selected_genes_expected": match.n_selected,
        "gene_fraction": match.fraction,
        "label_counts": {label: int(calls.count(label)) for label in CALL_LABELS},
        "package_version": __version__,
    }


def annotate(
    adata: ad.AnnData,
    model: OnnxPersisterModel | str | Path | None = None,
    *,
    counts_source: str = "auto",
    coverage: float | None = None,
    threshold: float | None = None,
    min_gene_fraction: float | None = None,
    signal_floors: SignalFloors | None = None,
    chunk_size: int | None = None,
    allow_non_integer: bool = False,
    params: Params | str | Path | None = None,
    tracking_uri: str | None = None,
    copy: bool = False,
    progress: bool = False,
) -> ad.AnnData | None:
    """Call every cell of ``adata`` persister, non-persister, uncertain or no_call, in place.

    ``model``: a ``models:/``/``runs:/`` URI, an ``.onnx`` path, or a loaded
    :class:`OnnxPersisterModel`; None is the champion of ``register.model_name``. A store URI
    is resolved in the MLflow store the caller chose (``mlflow.set_tracking_uri``,
    ``MLFLOW_TRACKING_URI``, or ``tracking_uri=`` here; see the module docstring for why the
    library never picks one). ``counts_source`` says where the raw counts are (``auto``,
    ``X``, ``raw``, ``layers/<name>``), chosen as ``oncopersistnet predict`` chooses them.
    ``coverage``: of the conformal sets the labels come from (``threshold`` only labels cells
    for a model without conformal scores; default the model's own). Every other default is
    ``predict.*`` of ``params`` (a :class:`Params`, a path, or None for ./params.yaml, else the
    project's own).

    Writes ``obs['persister_probability']`` (NaN without a call), ``obs['persister_label']``
    (categorical), ``obs['persister_set']``, ``obs['persister_ood']`` (out of distribution),
    ``obs['persister_ood_distance']``, ``obs['persister_no_call_reason']`` and
    ``uns['oncopersistnet']`` (model, version, coverage, OOD threshold and flagged share, gene
    match, label counts). Sparse and backed ``adata`` are scored ``chunk_size`` cells at a time;
    the matrix is never densified whole. Returns None, or the annotated copy with ``copy=True``
    (``adata`` untouched), as scanpy's functions do.
    """
    _check_not_empty(adata)
    config = _params(params)
    use_tracking_uri(tracking_uri)  # nothing unless the caller asked for a store
    loaded, facts = _load(model, config)
    chunk_size = config.predict.chunk_size if chunk_size is None else chunk_size
    if chunk_size <= 0:
        raise InputDataError(f"chunk size must be positive, got {chunk_size}")
    rule = rule_for(
        loaded, coverage=config.predict.coverage if coverage is None else coverage, threshold=threshold
    )
    key, matrix, genes = counts_matrix(
        adata, counts_source=counts_source, source="AnnData", require_integer=not allow_non_integer
    )
    match = match_genes(
        np.asarray(genes, dtype=str),
        loaded.genes,
        min_fraction=config.predict.min_gene_fraction if min_gene_fraction is None else min_gene_fraction,
        source="AnnData",
        selected_genes=loaded.selected_genes,
    )
    logger.info("AnnData: %s", match.describe())
    scoring = Scoring(loaded, match, rule, allow_non_integer, "AnnData", _floors(signal_floors, config))
    cell_ids = np.asarray(adata.obs_names, dtype=str)
    chunks = score_chunks(
        matrix,
        scoring,
        cell_ids=cell_ids,
        genes=np.asarray(genes, dtype=str),
        chunk_size=chunk_size,
        progress=progress,
    )
    calls = Calls.concat([part for _, part in chunks])
    target = adata.to_memory() if copy and adata.isbacked else adata.copy() if copy else adata
    for name, values in obs_frame(calls, index=target.obs_names).items():
        target.obs[name] = values
    target.uns[UNS_KEY] = _uns(
        facts, scoring, counts_key=key, calls=calls, warn=config.predict.ood_warn_fraction
    )
    log_summary(target.uns[UNS_KEY], where="annotated AnnData")
    return target if copy else None
