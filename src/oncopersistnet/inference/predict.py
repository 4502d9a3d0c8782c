"""Classify the cells of an ``.h5ad`` file in chunks and write one row per cell.

The input is opened in backed mode and read ``chunk_size`` cells at a time, so
memory is bounded by the chunk, not the file. Rows go to a temporary file that
is renamed onto the output only when every cell is scored.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
from scipy import sparse
from tqdm.auto import tqdm

from oncopersistnet.atomic import atomic_path
from oncopersistnet.data.readers import detect_format, read_counts
from oncopersistnet.errors import InputDataError
from oncopersistnet.inference.align import GeneMatch, aligned_block, match_genes
from oncopersistnet.inference.calls import (
    UNCERTAIN,
    Calls,
    CallTally,
    DecisionRule,
    make_calls,
    rule_for,
)
from oncopersistnet.inference.model import OnnxPersisterModel
from oncopersistnet.inference.signal import NO_CALL, SignalFloors, cell_signal, no_call_reasons
from oncopersistnet.inference.writers import OUTPUT_COLUMNS, PredictionWriter, check_output, write_obs_copy

__all__ = [
    "NO_CALL",
    "OUTPUT_COLUMNS",
    "UNCERTAIN",
    "Scoring",
    "check_counts",
    "log_summary",
    "predict_file",
    "score_block",
    "score_chunks",
]

logger = logging.getLogger(__name__)

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


def _check_paths(input_path: Path, output_path: Path, obs_output: str | Path | None) -> str:
    """The output format; an ``obs_output`` needs an ``.h5ad`` input to copy."""
    fmt = check_output(output_path)
    if obs_output is not None and detect_format(input_path) != "h5ad":
        raise InputDataError(
            f"{input_path}: --obs-output writes an annotated copy of an .h5ad input; this input is not one"
        )
    return fmt


@dataclass(frozen=True)
class Scoring:
    """How each chunk is scored and labelled (``source`` names the input in messages)."""

    model: OnnxPersisterModel
    match: GeneMatch
    rule: DecisionRule
    allow_non_integer: bool
    source: str
    floors: SignalFloors | None  # None: every cell is called (no floors)


def score_block(
    model: OnnxPersisterModel, aligned: np.ndarray, floors: SignalFloors | None, *, rule: DecisionRule
) -> Calls:
    """Every row of an aligned block, answered.

    Every cell is scored as it always was; a cell below ``floors`` then has its answers
    withheld and its label replaced by ``no_call``, so the cells with signal keep their exact
    probabilities.
    """
    probability, distance = model.predict(aligned)
    if floors is None:
        reasons = np.full(len(probability), "", dtype=str)
    else:
        reasons = no_call_reasons(cell_signal(aligned, model.selected_mask), floors)
    return make_calls(probability, distance, reasons, rule=rule)


def score_chunks(
    matrix: Any,
    scoring: Scoring,
    *,
    cell_ids: np.ndarray,
    genes: np.ndarray,
    chunk_size: int,
    progress: bool,
) -> Iterator[tuple[slice, Calls]]:
    """(rows, answers) for ``chunk_size`` cells of ``matrix`` at a time.

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
        yield (
            rows,
            score_block(
                scoring.model, aligned_block(block, scoring.match), scoring.floors, rule=scoring.rule
            ),
        )
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
) -> tuple[CallTally, Calls | None]:
    """Check, score, label and write ``chunk_size`` cells at a time (memory bounded by the chunk);
    every cell's answers too when ``keep`` (for the annotated copy)."""
    cell_ids = np.asarray(adata.obs_names, dtype=str)
    genes = np.asarray(adata.var_names, dtype=str)
    tally, kept = CallTally(), []
    for rows, calls in score_chunks(
        adata.X, scoring, cell_ids=cell_ids, genes=genes, chunk_size=chunk_size, progress=progress
    ):
        tally.add(calls)
        writer.write(cell_ids[rows], calls)
        if keep:
            kept.append(calls)
    return tally, Calls.concat(kept) if keep else None


def _summary(tally: CallTally, scoring: Scoring, *, ood_warn_fraction: float) -> dict[str, Any]:
    """What ``predict`` prints: counts, fractions, the flags, gene overlap and the decision rule."""
    match = scoring.match
    return tally.summary(scoring.rule, ood_warn_fraction=ood_warn_fraction) | {
        "no_call_floors": dataclasses.asdict(scoring.floors) if scoring.floors is not None else None,
        "genes_matched": match.n_matched,
        "genes_matched_before_mapping": match.n_matched_before_mapping,
        "genes_expected": match.n_model_genes,
        "selected_genes_matched": match.n_selected_matched,
        "selected_genes_expected": match.n_selected,
        "model": scoring.model.source,
    }


def log_summary(summary: dict[str, Any], *, where: str) -> None:
    """One log line: how many cells went where (and the out-of-distribution warning, if any)."""
    logger.info(
        "%s: %d cells, %d persisters (%.1f%%), %d uncertain (%.1f%%; %s), %d without a call (too little "
        "signal), %d out of distribution (%.1f%% of called cells)",
        where,
        summary["cells"],
        summary["persisters"],
        100 * summary["persister_fraction"],
        summary["uncertain"],
        100 * summary["uncertain_fraction"],
        summary["decision_rule"],
        summary["no_calls"],
        summary["out_of_distribution"],
        100 * summary["out_of_distribution_fraction_of_called"],
    )
    if summary.get("ood_warning"):
        logger.warning("%s: %s", where, summary["ood_warning"])


def predict_file(
    model: OnnxPersisterModel,
    input_path: str | Path,
    output_path: str | Path,
    *,
    coverage: float,
    ood_warn_fraction: float,
    signal_floors: SignalFloors | None = None,
    chunk_size: int = 10000,
    min_gene_fraction: float = 0.5,
    threshold: float | None = None,
    progress: bool = True,
    allow_non_integer: bool = False,
    counts_source: str = "auto",
    orientation: str = "auto",
    obs_output: str | Path | None = None,
) -> dict[str, Any]:
    """Score every cell of ``input_path`` (any supported format) and write a CSV; return a summary.

    An ``.h5ad`` with counts in ``X`` is streamed from disk in backed mode; other formats are
    read whole, as sparse matrices. Each cell's answers are :class:`~oncopersistnet.inference.calls.Calls`:
    the calibrated probability, a label from the model's conformal set at ``coverage`` (``threshold``
    only for a model without conformal scores), the set, the out-of-distribution flag and distance,
    and a no-call reason for a cell below ``signal_floors`` (None: no floors). Rows go to
    ``output_path`` (``.csv`` or ``.parquet``) chunk by chunk; with ``obs_output``, a copy of an
    ``.h5ad`` input gets the same answers in ``obs`` for users who continue in scanpy.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    fmt = _check_paths(input_path, output_path, obs_output)
    if chunk_size <= 0:
        raise InputDataError(f"chunk size must be positive, got {chunk_size}")
    rule = rule_for(model, coverage=coverage, threshold=threshold)
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
        scoring = Scoring(model, match, rule, allow_non_integer, str(input_path), signal_floors)
        with atomic_path(output_path) as tmp:
            writer = PredictionWriter(tmp, fmt)
            tally, kept = _score_chunks(
                adata, scoring, writer, chunk_size=chunk_size, progress=progress, keep=obs_output is not None
            )
            writer.close()
            if obs_output is not None:
                if adata.isbacked:
                    adata.file.close()
                write_obs_copy(input_path, Path(obs_output), calls=kept)
    finally:
        if adata.isbacked:
            adata.file.close()
    summary = _summary(tally, scoring, ood_warn_fraction=ood_warn_fraction) | {
        "output": str(output_path),
        "obs_output": str(obs_output) if obs_output is not None else None,
    }
    log_summary(summary, where=f"wrote {output_path}")
    return summary
