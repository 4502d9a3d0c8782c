"""Classify the cells of an ``.h5ad`` file in chunks and write one row per cell.

The input is opened in backed mode and read ``chunk_size`` cells at a time, so
memory is bounded by the chunk, not the file. Rows go to a temporary file that
is renamed onto the output only when every cell is scored.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
from scipy import sparse
from tqdm.auto import tqdm

from oncopersistnet.atomic import atomic_path
from oncopersistnet.data.labels import NON_PERSISTER, PERSISTER
from oncopersistnet.data.readers import detect_format, read_counts
from oncopersistnet.errors import InputDataError
from oncopersistnet.inference.align import GeneMatch, aligned_block, match_genes
from oncopersistnet.inference.model import OnnxPersisterModel
from oncopersistnet.inference.signal import (
    NO_CALL,
    SignalFloors,
    cell_signal,
    no_call_reasons,
    withhold_calls,
)
from oncopersistnet.inference.writers import OUTPUT_COLUMNS, PredictionWriter, check_output, write_obs_copy

__all__ = [
    "NO_CALL",
    "OUTPUT_COLUMNS",
    "UNCERTAIN",
    "Scoring",
    "check_counts",
    "decision_band",
    "label_cells",
    "predict_file",
    "score_block",
    "score_chunks",
]

logger = logging.getLogger(__name__)

UNCERTAIN = "uncertain"

# The graph sums each cell's counts in float32 for its library size. Past float32's
# range the sum is inf and every gene normalises to 0 or NaN, so a probability
# would still come out, silently wrong; half the range leaves room for rounding.
MAX_CELL_TOTAL = float(np.finfo(np.float32).max) / 2


def check_counts(
    block: np.ndarray | sparse.spmatrix,
    cell_ids: np.ndarray,
    genes: np.ndarray,
    *,
    source: str,
    allow_non_integer: bool = False,
) -> None:
    """Raise on NaN/inf, negative values, (unless allowed) non-integer values and
    cells whose total count float32 cannot hold (:data:`MAX_CELL_TOTAL`).

    A sparse block is checked on its stored values only, without densifying it.
    The graph normalises raw counts itself; already-normalised input (log1p, CPM)
    would be normalised twice and scored wrongly without any sign, so it stops.
    """
    if sparse.issparse(block):
        csr = sparse.csr_matrix(block)
        values = csr.data
        rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
        cols = csr.indices
    else:
        dense = np.asarray(block)
        values = dense.ravel()
        rows = cols = None  # positions computed for the first bad value only
    checks = [
        (~np.isfinite(values), "non-finite value", ""),
        (values < 0, "negative count", "; raw counts expected"),
    ]
    if not allow_non_integer:
        checks.append(
            (
                values != np.round(values),
                "non-integer value",
                "; the model expects raw counts (pass --allow-non-integer to score anyway)",
            )
        )
    for bad, what, hint in checks:
        if bad.any():
            i = int(np.argmax(bad))
            row, col = (int(rows[i]), int(cols[i])) if rows is not None else np.unravel_index(i, dense.shape)
            raise InputDataError(
                f"{source}: {what} {values[i]} at cell {str(cell_ids[row])!r}, gene {str(genes[col])!r}{hint}"
            )
    totals = np.asarray(block.sum(axis=1, dtype=np.float64)).ravel()  # float64: int64 sums could wrap
    if totals.size and totals.max() > MAX_CELL_TOTAL:
        i = int(np.argmax(totals))
        raise InputDataError(
            f"{source}: cell {str(cell_ids[i])!r} has a total count of {totals[i]:.4g}, more than the model "
            f"can normalise in float32 (at most {MAX_CELL_TOTAL:.2g}); raw counts expected"
        )


def label_cells(probability: np.ndarray, threshold: float, uncertain_band: tuple[float, float]) -> np.ndarray:
    """persister / non-persister at ``threshold``; ``uncertain`` strictly inside the band."""
    low, high = uncertain_band
    labels = np.where(probability >= threshold, PERSISTER, NON_PERSISTER).astype(object)
    labels[(probability > low) & (probability < high)] = UNCERTAIN
    return labels.astype(str)


def decision_band(threshold: float, uncertain_band: tuple[float, float] | None) -> tuple[float, float]:
    """The ``uncertain`` band, checked: inside [0, 1] and around the threshold (or empty)."""
    low, high = uncertain_band if uncertain_band is not None else (threshold, threshold)
    if not 0.0 <= low <= high <= 1.0:
        raise InputDataError(f"uncertain band must satisfy 0 <= low <= high <= 1, got {low}, {high}")
    if not (low <= threshold <= high or low == high):
        raise InputDataError(
            f"uncertain band ({low}, {high}) must contain the threshold {threshold}, or cells on one side of "
            "it would be called without being confident; move the band or pass --uncertain-band T T to turn "
            "it off"
        )
    return low, high


def _check_paths(input_path: Path, output_path: Path, obs_output: str | Path | None) -> str:
    """The output format; an ``obs_output`` needs an ``.h5ad`` input to copy."""
    fmt = check_output(output_path)
    if obs_output is not None and detect_format(input_path) != "h5ad":
        raise InputDataError(
            f"{input_path}: --obs-output writes an annotated copy of an .h5ad input; this input is not one"
        )
    return fmt


@dataclass
class _Scored:
    """Running totals over the chunks, and (for ``obs_output``) every cell's probability, label and
    no-call reason."""

    persisters: int = 0
    uncertain: int = 0
    no_calls: int = 0
    kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def add(self, probability: np.ndarray, labels: np.ndarray, reasons: np.ndarray, *, keep: bool) -> None:
        self.persisters += int((labels == PERSISTER).sum())
        self.uncertain += int((labels == UNCERTAIN).sum())
        self.no_calls += int((labels == NO_CALL).sum())
        if keep:
            self.kept.append((probability, labels, reasons))

    def probabilities(self) -> np.ndarray:
        return np.concatenate([k[0] for k in self.kept]) if self.kept else np.zeros(0, dtype=np.float32)

    def labels(self) -> np.ndarray:
        return np.concatenate([k[1] for k in self.kept]) if self.kept else np.zeros(0, dtype=str)

    def reasons(self) -> np.ndarray:
        return np.concatenate([k[2] for k in self.kept]) if self.kept else np.zeros(0, dtype=str)


@dataclass(frozen=True)
class Scoring:
    """How each chunk is scored and labelled (``source`` names the input in messages)."""

    model: OnnxPersisterModel
    match: GeneMatch
    threshold: float
    band: tuple[float, float]
    allow_non_integer: bool
    source: str
    floors: SignalFloors | None  # None: every cell is called (no floors)


def score_block(
    model: OnnxPersisterModel,
    aligned: np.ndarray,
    floors: SignalFloors | None,
    *,
    threshold: float,
    band: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probability, label, no-call reason) of every row of an aligned block.

    Every cell is scored as it always was; a cell below ``floors`` then has its probability
    withheld (NaN) and its label replaced by ``no_call``, so the cells with signal keep their
    exact probabilities.
    """
    probability = model.predict_proba(aligned)
    labels = label_cells(probability, threshold, band)
    if floors is None:
        return probability, labels, np.full(len(labels), "", dtype=str)
    reasons = no_call_reasons(cell_signal(aligned, model.selected_mask), floors)
    return (*withhold_calls(probability, labels, reasons), reasons)


def score_chunks(
    matrix: Any,
    scoring: Scoring,
    *,
    cell_ids: np.ndarray,
    genes: np.ndarray,
    chunk_size: int,
    progress: bool,
) -> Iterator[tuple[slice, np.ndarray, np.ndarray, np.ndarray]]:
    """(rows, probability, label, no-call reason) for ``chunk_size`` cells of ``matrix`` at a time.

    The one scoring loop of the file CLI and ``oncopersistnet.annotate``: each chunk is checked
    (:func:`check_counts`), aligned to the model's genes and scored by :func:`score_block`, so the
    same cells get the same answers whichever door they came in by. ``matrix`` may be dense,
    sparse or an on-disk (backed) dataset; only one chunk is ever dense in memory.
    """
    n_cells = matrix.shape[0]
    bar = tqdm(total=n_cells, desc="predicting", unit="cell", unit_scale=True, disable=not progress)
    for start in range(0, n_cells, chunk_size):
        rows = slice(start, min(start + chunk_size, n_cells))
        block = matrix[rows]
        check_counts(
            block, cell_ids[rows], genes, source=scoring.source, allow_non_integer=scoring.allow_non_integer
        )
        probability, labels, reasons = score_block(
            scoring.model,
            aligned_block(block, scoring.match),
            scoring.floors,
            threshold=scoring.threshold,
            band=scoring.band,
        )
        yield rows, probability, labels, reasons
        bar.update(rows.stop - rows.start)
    bar.close()


def _score_chunks(
    adata: ad.AnnData,
    scoring: Scoring,
    writer: PredictionWriter,
    *,
    chunk_size: int,
    progress: bool,
    keep: bool,
) -> _Scored:
    """Check, score, label and write ``chunk_size`` cells at a time (memory bounded by the chunk)."""
    cell_ids = np.asarray(adata.obs_names, dtype=str)
    genes = np.asarray(adata.var_names, dtype=str)
    scored = _Scored()
    for rows, probability, labels, reasons in score_chunks(
        adata.X, scoring, cell_ids=cell_ids, genes=genes, chunk_size=chunk_size, progress=progress
    ):
        scored.add(probability, labels, reasons, keep=keep)
        writer.write(cell_ids[rows], probability, labels, reasons=reasons)
    return scored


def _summary(
    adata: ad.AnnData, scored: _Scored, scoring: Scoring, *, output_path: Path, obs_output: str | Path | None
) -> dict[str, Any]:
    """What ``predict`` prints: counts, fractions, gene overlap, the decision rule and where rows went."""
    match, (low, high) = scoring.match, scoring.band
    return {
        "cells": int(adata.n_obs),
        "persisters": scored.persisters,
        "persister_fraction": scored.persisters / adata.n_obs,
        "uncertain": scored.uncertain,
        "uncertain_fraction": scored.uncertain / adata.n_obs,
        "uncertain_band": [low, high],
        "no_calls": scored.no_calls,
        "no_call_fraction": scored.no_calls / adata.n_obs,
        "no_call_floors": dataclasses.asdict(scoring.floors) if scoring.floors is not None else None,
        "genes_matched": match.n_matched,
        "genes_matched_before_mapping": match.n_matched_before_mapping,
        "genes_expected": match.n_model_genes,
        "selected_genes_matched": match.n_selected_matched,
        "selected_genes_expected": match.n_selected,
        "threshold": scoring.threshold,
        "model": scoring.model.source,
        "output": str(output_path),
        "obs_output": str(obs_output) if obs_output is not None else None,
    }


def _log_summary(
    summary: dict[str, Any], scored: _Scored, *, band: tuple[float, float], output_path: Path
) -> None:
    """One log line: how many cells went where."""
    logger.info(
        "wrote %d predictions to %s: %d persisters (%.1f%%), %d uncertain "
        "(%.1f%%, probability in (%.2f, %.2f)), %d without a call (too little signal)",
        summary["cells"],
        output_path,
        scored.persisters,
        100 * summary["persister_fraction"],
        scored.uncertain,
        100 * summary["uncertain_fraction"],
        *band,
        scored.no_calls,
    )


def predict_file(
    model: OnnxPersisterModel,
    input_path: str | Path,
    output_path: str | Path,
    *,
    chunk_size: int = 10000,
    min_gene_fraction: float = 0.5,
    threshold: float | None = None,
    progress: bool = True,
    allow_non_integer: bool = False,
    counts_source: str = "auto",
    orientation: str = "auto",
    uncertain_band: tuple[float, float] | None = None,
    obs_output: str | Path | None = None,
    signal_floors: SignalFloors | None = None,
) -> dict[str, Any]:
    """Score every cell of ``input_path`` (any supported format) and write a CSV; return a summary.

    An ``.h5ad`` with counts in ``X`` is streamed from disk in backed mode; other
    formats are read whole, as sparse matrices. The probability is the model's
    calibrated one; a cell whose probability lies strictly inside
    ``uncertain_band`` is labelled ``uncertain`` rather than forced into a class.
    Rows go to ``output_path`` (``.csv`` or ``.parquet``) chunk by chunk; with
    ``obs_output``, a copy of an ``.h5ad`` input gets ``obs['persister_probability']``
    and ``obs['persister_label']`` for users who continue in scanpy. A cell below
    ``signal_floors`` gets ``no_call`` and a reason instead of a probability (None: no floors).
    """
    input_path, output_path = Path(input_path), Path(output_path)
    fmt = _check_paths(input_path, output_path, obs_output)
    if chunk_size <= 0:
        raise InputDataError(f"chunk size must be positive, got {chunk_size}")
    threshold = model.threshold if threshold is None else threshold
    band = decision_band(threshold, uncertain_band)
    adata = read_counts(
        input_path,
        counts_source=counts_source,
        orientation=orientation,
        backed=detect_format(input_path) == "h5ad",
        require_integer=not allow_non_integer,
    )
    try:
        match = match_genes(
            np.asarray(adata.var_names, dtype=str),
            model.genes,
            min_fraction=min_gene_fraction,
            source=str(input_path),
            selected_genes=model.selected_genes,
        )
        logger.info("%s: %s", input_path, match.describe())
        scoring = Scoring(model, match, threshold, band, allow_non_integer, str(input_path), signal_floors)
        with atomic_path(output_path) as tmp:
            writer = PredictionWriter(tmp, fmt)
            scored = _score_chunks(
                adata, scoring, writer, chunk_size=chunk_size, progress=progress, keep=obs_output is not None
            )
            writer.close()
            if obs_output is not None:
                if adata.isbacked:
                    adata.file.close()
                write_obs_copy(
                    input_path,
                    Path(obs_output),
                    probability=scored.probabilities(),
                    labels=scored.labels(),
                    reasons=scored.reasons(),
                )
    finally:
        if adata.isbacked:
            adata.file.close()
    summary = _summary(adata, scored, scoring, output_path=output_path, obs_output=obs_output)
    _log_summary(summary, scored, band=band, output_path=output_path)
    return summary
