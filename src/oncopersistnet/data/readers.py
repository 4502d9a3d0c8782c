"""Read every count format scRNA-seq users have into one AnnData of raw counts.

Users arrive with an ``.h5ad`` (counts in ``X``, a layer or ``.raw``), a Cell
Ranger output folder (``matrix.mtx`` + ``features.tsv`` + ``barcodes.tsv``), a
Cell Ranger ``.h5`` or a plain CSV/TSV table in either orientation. Everything
downstream (validation, preprocessing, prediction) wants one thing: a CSR
cells x genes matrix of *raw* counts with cell ids as ``obs_names`` and gene
names as given as ``var_names``. This module is the single place that turns the
formats into that, and that turns every way a file can be wrong (missing,
truncated, normalised, ragged) into an :class:`InputDataError` that says what
and where, instead of a traceback from h5py or pandas.

Gene names are left exactly as the source has them (symbols or Ensembl IDs,
duplicates included): harmonising them is a separate step. Count values are
not validated here (NaN, negatives) either; validation does that, except the
integer check that decides *which* matrix of an ``.h5ad`` holds the counts and
a value too large for the float32 the counts are held in (it would become inf).
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import re
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.io
from scipy import sparse

from oncopersistnet.choices import COUNTS_SOURCES_HELP, ORIENTATIONS
from oncopersistnet.data.hdf5 import hdf5_problem, read_h5ad
from oncopersistnet.errors import InputDataError

logger = logging.getLogger(__name__)

__all__ = ["counts_matrix", "detect_format", "is_integer_valued", "join_metadata", "read_counts"]

FORMATS = ("h5ad", "10x_mtx", "10x_h5", "csv", "tsv")

# Elements per dense block while scanning or converting: bounds the temporary
# memory of a check or a CSV chunk (~32 MB of float64) whatever the input size.
_BLOCK_ELEMENTS = 4_000_000
# CSV/TSV chunks: pandas pays ~40 us per column per chunk, so a wide table
# (genes x 30,000 cells) read 100 rows at a time spends most of its time on
# overhead; chunks therefore hold at least _TABLE_MIN_CHUNK_ROWS rows and
# otherwise about _TABLE_CHUNK_ELEMENTS values (~128 MB as float64).
_TABLE_CHUNK_ELEMENTS = 16_000_000
_TABLE_MIN_CHUNK_ROWS = 500
# At most this many row names (from the first chunk) are looked at to decide orientation.
_ORIENTATION_SAMPLE_ROWS = 1000

_UNKNOWN_FORMAT = (
    "unknown format '{name}': expected .h5ad, .h5 (10x), a 10x directory "
    "(matrix.mtx + features.tsv + barcodes.tsv) or .csv/.tsv(.gz) count table"
)

_ENSEMBL_RE = re.compile(r"^ENS[A-Z]*G\d{11}(\.\d+)?$")
_BARCODE_RE = re.compile(r"^[ACGT]{8,}(-\d+)?$")
_EMBEDDED_BARCODE_RE = re.compile(r"[ACGT]{12,}")
_CELL_WORD_RE = re.compile(r"cell|barcode", re.IGNORECASE)
_SYMBOL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[.\-_][A-Za-z0-9]+)*$")
# pandas' default spellings of a missing value. They are applied to count fields
# only (see _chunk_to_sparse): parsing them in the name column too turned a cell
# or gene called "NA", "None", "null" or "" into the string "nan".
_NA_STRINGS = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)
_GENE_CORNER = {
    "gene",
    "genes",
    "gene_id",
    "gene_ids",
    "geneid",
    "gene_name",
    "gene_names",
    "gene_symbol",
    "gene_symbols",
    "symbol",
    "symbols",
    "feature",
    "features",
    "ensembl",
    "ensembl_id",
    "ensembl_gene_id",
}
_CELL_CORNER = {
    "cell",
    "cells",
    "cell_id",
    "cell_ids",
    "cellid",
    "barcode",
    "barcodes",
    "cell_barcode",
    "cell_barcodes",
}


# --------------------------------------------------------------------------- public API


def detect_format(path: str | Path) -> str:
    """Name the format of ``path``: ``"h5ad"``, ``"10x_mtx"``, ``"10x_h5"``, ``"csv"`` or ``"tsv"``.

    Decided from the name (a directory is a 10x folder; its files are checked
    when it is read), except ``.txt`` tables, whose first line says whether they
    are comma- or tab-separated. Raises :class:`InputDataError` for a missing
    path or an extension that is none of these, so a typo fails before anything
    is loaded.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputDataError(f"{path}: no such file or directory")
    if path.is_dir():
        return "10x_mtx"
    if not path.is_file():
        raise InputDataError(_UNKNOWN_FORMAT.format(name=path.name))
    name = path.name.lower()
    stem = name[:-3] if name.endswith(".gz") else name
    if name.endswith(".h5ad"):
        return "h5ad"
    if name.endswith(".h5") or name.endswith(".hdf5"):
        return "10x_h5"
    if stem.endswith(".mtx"):
        return "10x_mtx"
    if stem.endswith(".csv"):
        return "csv"
    if stem.endswith(".tsv") or stem.endswith(".tab"):
        return "tsv"
    if stem.endswith(".txt"):
        first = _read_first_line(path)
        return "csv" if ("," in first and "\t" not in first) else "tsv"
    raise InputDataError(_UNKNOWN_FORMAT.format(name=path.name))


def is_integer_valued(matrix: Any) -> bool:
    """True when every stored value of ``matrix`` is a whole number.

    Sparse matrices are judged on their stored ``.data`` only (implicit zeros
    are integers) and nothing is densified; dense input is scanned in blocks so
    the check never needs a second full-size copy. Integer and boolean dtypes
    are integer by definition. NaN and infinity are ignored here (they say
    nothing about normalisation); the count checks downstream reject them.
    """
    return _first_non_integer(matrix) is None


def read_counts(
    path: str | Path,
    *,
    counts_source: str = "auto",
    orientation: str = "auto",
    backed: bool = False,
    require_integer: bool = True,
) -> ad.AnnData:
    """Read raw counts from any supported format into a cells x genes AnnData.

    Parameters
    ----------
    path:
        ``.h5ad``; a 10x folder (or its ``matrix.mtx(.gz)``); a 10x ``.h5``;
        a ``.csv``/``.tsv``/``.txt`` table, optionally gzipped.
    counts_source:
        ``.h5ad`` only. ``"auto"`` takes ``layers['counts']``, else ``X`` if it
        is integer-valued, else an integer-valued ``.raw``; otherwise the data
        look normalised and an error says so (training on log-normalised values
        as if they were counts would silently corrupt every later step).
        ``"X"``, ``"raw"`` or ``"layers/<name>"`` force a source.
    orientation:
        CSV/TSV only. ``"auto"`` detects which axis holds genes (see
        :func:`_detect_orientation`); ``"cells_x_genes"`` / ``"genes_x_cells"``
        say it explicitly.
    backed:
        ``.h5ad`` only: return the file opened with ``backed="r"`` (``X`` stays
        on disk, for streaming prediction over files larger than memory) when the
        counts are in ``X``; counts found elsewhere are read into memory instead.
    require_integer:
        ``.h5ad`` only. ``False`` accepts non-integer values as counts (``auto``
        then takes ``layers['counts']`` or ``X``): for users who insist on
        scoring normalised data, at their own risk.

    Returns
    -------
    AnnData with ``X`` a CSR matrix of counts (integer dtype kept, otherwise
    float32; a finite value beyond float32's range is refused rather than turned
    into inf), ``obs_names`` cell ids, ``var_names`` gene names as given,
    ``uns['input']`` describing what was read. In backed mode ``X`` is the
    on-disk dataset as stored.
    """
    path = Path(path).expanduser()
    fmt = detect_format(path)
    if backed and fmt != "h5ad":
        raise InputDataError(f"{path}: backed mode is only available for .h5ad files, this is {fmt}")
    if fmt == "h5ad":
        adata, detail = _read_h5ad_counts(path, counts_source, backed=backed, require_integer=require_integer)
    elif fmt == "10x_mtx":
        adata, detail = _read_10x_mtx(path)
    elif fmt == "10x_h5":
        adata, detail = _read_10x_h5(path)
    else:
        adata, detail = _read_table(path, fmt, orientation)

    _check_shape_and_ids(adata, path)
    _check_float32_range(adata, path)
    info: dict[str, Any] = {"format": fmt, "path": str(path)}
    info.update({k: v for k, v in detail.items() if not k.startswith("_")})
    adata.uns["input"] = info
    logger.info(
        "read %s %s: %d cells x %d genes, %s",
        fmt,
        path,
        adata.n_obs,
        adata.n_vars,
        detail.get("_description", ""),
    )
    return adata


def join_metadata(adata: ad.AnnData, metadata_path: str | Path, cell_column: str | None = None) -> ad.AnnData:
    """Add per-cell metadata from a CSV/TSV(.gz) to ``obs``, matched on cell id.

    The id column is ``cell_column`` or the first column. Cells without a
    metadata row are dropped (a cell without its label or sample cannot be
    trained on) and counted in a warning; metadata rows for cells not in the
    data are ignored and counted. Metadata columns replace ``obs`` columns of
    the same name. Returns a new AnnData; ``adata`` is not modified.

    Raises :class:`InputDataError` when no id matches at all (typically
    barcodes written with and without the ``-1`` suffix, shown in the message
    so the mismatch is visible) or when the metadata repeat an id.
    """
    metadata_path = Path(metadata_path).expanduser()
    meta = _read_metadata_table(metadata_path, cell_column)
    id_col = meta.columns[0] if cell_column is None else cell_column
    ids = meta[id_col].astype(str)
    dup = ids[ids.duplicated(keep=False)].unique()
    if len(dup):
        raise InputDataError(
            f"{metadata_path}: cell id column {id_col!r} repeats {len(dup)} id(s), e.g. "
            f"{_examples(dup)}; each cell must have one metadata row"
        )
    meta = meta.drop(columns=[id_col])
    meta.index = pd.Index(ids.to_numpy(), name=None)

    obs_names = pd.Index(adata.obs_names.astype(str))
    keep = obs_names.isin(meta.index)
    n_match = int(keep.sum())
    if n_match == 0:
        raise InputDataError(
            f"{metadata_path}: no cell id in column {id_col!r} matches the data's cell ids; "
            f"data has e.g. {_examples(obs_names)}, metadata has e.g. {_examples(meta.index)}"
            f"{_id_style_hint(obs_names, meta.index)}"
        )
    n_dropped = int((~keep).sum())
    n_unknown = int((~meta.index.isin(obs_names)).sum())
    if n_dropped:
        logger.warning(
            "dropped %d of %d cells that have no row in %s (e.g. %s)",
            n_dropped,
            len(obs_names),
            metadata_path,
            _examples(obs_names[~keep]),
        )
    if n_unknown:
        logger.warning(
            "ignored %d metadata rows in %s whose cell id is not in the data (e.g. %s)",
            n_unknown,
            metadata_path,
            _examples(meta.index[~meta.index.isin(obs_names)]),
        )
    clashing = [c for c in meta.columns if c in adata.obs.columns]
    if clashing:
        logger.warning(
            "metadata columns replace obs columns of the same name: %s", ", ".join(map(str, clashing))
        )

    if n_dropped == 0:
        out = adata.to_memory() if adata.isbacked else adata.copy()
    else:
        subset = adata[keep]
        out = subset.to_memory() if adata.isbacked else subset.copy()
    obs = out.obs.drop(columns=clashing)
    joined = meta.reindex(pd.Index(out.obs_names.astype(str)))
    joined.index = obs.index
    out.obs = pd.concat([obs, joined], axis=1)
    logger.info(
        "joined %d metadata columns from %s onto %d cells",
        meta.shape[1],
        metadata_path,
        n_match,
    )
    return out


# --------------------------------------------------------------------------- helpers: general


def _examples(values: Iterable[Any], n: int = 3) -> str:
    """Up to ``n`` values quoted, for messages that must show rather than describe."""
    shown = []
    for value in values:
        shown.append(repr(str(value)))
        if len(shown) == n:
            break
    return ", ".join(shown) if shown else "none"


def _id_style_hint(data_ids: pd.Index, meta_ids: pd.Index) -> str:
    """Say so when the two id sets would match after removing a ``-1``-style suffix."""

    def strip(index: pd.Index) -> set[str]:
        return {re.sub(r"-\d+$", "", s) for s in index[:5000]}

    if strip(data_ids) & strip(meta_ids):
        return " (they match once a '-<number>' suffix is removed: make both use the same barcode style)"
    return ""


def _cause(exc: BaseException) -> str:
    """First line of an exception, short enough for a one-line error."""
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def _open_text(path: Path) -> io.TextIOBase:
    """Open a plain or gzipped text file (decided by the ``.gz`` suffix)."""
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _read_first_line(path: Path) -> str:
    try:
        with _open_text(path) as handle:
            return handle.readline()
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        raise _unreadable(path, exc) from exc


def _unreadable(path: Path, exc: BaseException) -> InputDataError:
    """The error for a file that cannot be decoded at all (bad gzip, binary, truncated)."""
    if isinstance(exc, gzip.BadGzipFile) or (isinstance(exc, OSError) and "gzip" in str(exc).lower()):
        return InputDataError(f"{path}: not a valid gzip file ({_cause(exc)})")
    if isinstance(exc, (EOFError, zlib.error)):
        return InputDataError(f"{path}: compressed data is truncated or corrupt ({_cause(exc)})")
    if isinstance(exc, UnicodeDecodeError):
        return InputDataError(f"{path}: not a text file ({_cause(exc)})")
    return InputDataError(f"{path}: cannot be read ({_cause(exc)})")


def _compact(matrix: sparse.spmatrix | sparse.sparray) -> sparse.csr_matrix:
    """CSR with the contract's dtypes: integers kept (int32 when they fit), floats as float32.

    float32 holds every integer up to 2**24 exactly, far above any UMI count, and
    halves memory against float64.
    """
    csr = sparse.csr_matrix(matrix)
    kind = csr.dtype.kind
    if kind in "iub":
        if kind == "b" or csr.nnz == 0:
            return csr.astype(np.int32)
        lo, hi = csr.data.min(), csr.data.max()
        info = np.iinfo(np.int32)
        if csr.dtype != np.int32 and lo >= info.min and hi <= info.max:
            return csr.astype(np.int32)
        return csr
    if csr.dtype != np.float32:
        if csr.dtype.kind == "f" and _beyond_float32(csr.data) is not None:
            # float32 would turn such a value into inf without a word; keep it as
            # it is so that read_counts can refuse it naming the cell and gene.
            return csr.astype(np.float64)
        return csr.astype(np.float32)
    return csr


def _beyond_float32(values: np.ndarray) -> int | None:
    """Index of the first finite value that float32 cannot hold (|v| > 3.4e38), or None."""
    with np.errstate(invalid="ignore"):
        bad = np.isfinite(values) & (np.abs(values) > np.finfo(np.float32).max)
    return int(np.argmax(bad)) if bad.any() else None


def _check_float32_range(adata: ad.AnnData, path: Path) -> None:
    """Refuse a value too large for float32 (kept float64 by :func:`_compact`).

    No count is ever that large.
    """
    if (
        adata.isbacked
        or not sparse.issparse(adata.X)
        or adata.X.dtype.kind != "f"
        or adata.X.dtype.itemsize <= 4
    ):
        return
    csr = sparse.csr_matrix(adata.X)
    pos = _beyond_float32(csr.data)
    if pos is None:
        return
    row, col = _stored_entry_cell_and_gene(csr, pos)
    raise InputDataError(
        f"{path}: value {csr.data[pos]:.4g} at cell {str(adata.obs_names[row])!r}, gene "
        f"{str(adata.var_names[col])!r} is beyond the float32 range counts are held in (3.4e38); "
        "raw counts expected"
    )


def _stored_entry_cell_and_gene(matrix: Any, pos: int) -> tuple[int, int]:
    """(row, column) of the ``pos``-th stored value of a CSR or CSC matrix, to name it in a message."""
    major = int(np.searchsorted(matrix.indptr, pos, side="right") - 1)
    minor = int(matrix.indices[pos])
    return (major, minor) if matrix.format == "csr" else (minor, major)


def _check_shape_and_ids(adata: ad.AnnData, path: Path) -> None:
    """Fail on an empty matrix or on repeated cell ids, which no later step can repair."""
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise InputDataError(
            f"{path}: the count matrix is empty ({adata.n_obs} cells x {adata.n_vars} genes)"
        )
    names = pd.Index(adata.obs_names)
    if not names.is_unique:
        dup = names[names.duplicated(keep=False)].unique()
        raise InputDataError(
            f"{path}: {len(dup)} cell id(s) appear more than once, e.g. {_examples(dup, 5)}; "
            "cell ids must be unique (merge or rename the duplicated barcodes)"
        )


# --------------------------------------------------------------------------- integer checks


def _first_bad_flat(values: np.ndarray) -> int | None:
    """Index of the first finite, non-whole entry of a 1-D array, in blocks.

    NaN and inf are not evidence of normalised data; they are left to the
    count checks downstream, which name them as what they are.
    """
    if values.dtype.kind in "iub":
        return None
    for start in range(0, values.shape[0], _BLOCK_ELEMENTS):
        block = np.asarray(values[start : start + _BLOCK_ELEMENTS])
        with np.errstate(invalid="ignore"):
            bad = np.isfinite(block) & (np.floor(block) != block)
        if bad.any():
            return start + int(np.argmax(bad))
    return None


def _first_non_integer(matrix: Any) -> tuple[int, int, float] | None:
    """(row, column, value) of the first non-integer entry, or None; never densifies sparse input."""
    if matrix is None:
        return None
    if sparse.issparse(matrix):
        if matrix.dtype.kind in "iub":
            return None
        if matrix.format not in ("csr", "csc"):
            matrix = sparse.csr_matrix(matrix)
        pos = _first_bad_flat(matrix.data)
        if pos is None:
            return None
        row, col = _stored_entry_cell_and_gene(matrix, pos)
        return row, col, float(matrix.data[pos])
    # h5py datasets and numpy arrays are sliced block by block, never loaded whole.
    arr = matrix if hasattr(matrix, "shape") and hasattr(matrix, "dtype") else np.asarray(matrix)
    if arr.dtype.kind in "iub":
        return None
    if len(arr.shape) != 2:
        flat = np.asarray(arr).reshape(-1)
        pos = _first_bad_flat(flat)
        return None if pos is None else (0, pos, float(flat[pos]))
    n_rows, n_cols = arr.shape
    step = max(1, _BLOCK_ELEMENTS // max(n_cols, 1))
    for start in range(0, n_rows, step):
        block = np.asarray(arr[start : start + step])
        with np.errstate(invalid="ignore"):
            bad = np.isfinite(block) & (np.floor(block) != block)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            return start + int(r), int(c), float(block[r, c])
    return None


# --------------------------------------------------------------------------- .h5ad


def _h5ad_sources(adata: ad.AnnData) -> list[str]:
    sources = []
    if adata.X is not None:
        sources.append("X")
    sources.extend(f"layers/{name}" for name in adata.layers.keys())
    if adata.raw is not None:
        sources.append("raw")
    return sources


def _describe_non_integer(
    label: str, matrix: Any, *, obs_names: Sequence[str], var_names: Sequence[str]
) -> str | None:
    """'X holds non-integer values (e.g. 1.386 at cell 'AAAC-1', gene 'CD3E')', or None if integer."""
    found = _first_non_integer(matrix)
    if found is None:
        return None
    row, col, value = found
    return (
        f"{label} holds non-integer values (e.g. {value:.4g} at cell {str(obs_names[row])!r}, "
        f"gene {str(var_names[col])!r})"
    )


def _normalise_source(counts_source: str, adata: ad.AnnData, path: Path) -> str:
    """Map the user's spelling of a source onto 'X', 'raw' or 'layers/<name>' and check it exists."""
    source = counts_source.strip()
    if source in ("raw", ".raw", "raw.X", ".raw.X", "raw/X"):
        key = "raw"
    elif source == "X":
        key = "X"
    elif source.startswith("layers/"):
        key = source
    elif source in adata.layers.keys():  # a bare layer name is unambiguous
        key = f"layers/{source}"
    else:
        raise InputDataError(
            f"{path}: counts_source {counts_source!r} is not understood; use {COUNTS_SOURCES_HELP} "
            f"(this file has: {', '.join(_h5ad_sources(adata)) or 'nothing'})"
        )
    exists = (
        (key == "X" and adata.X is not None)
        or (key == "raw" and adata.raw is not None)
        or (key.startswith("layers/") and key[len("layers/") :] in adata.layers.keys())
    )
    if not exists:
        layers = ", ".join(repr(k) for k in adata.layers.keys()) or "none"
        raise InputDataError(
            f"{path}: counts_source {counts_source!r} does not exist in this file; layers available: {layers}"
            f"; .raw: {'present' if adata.raw is not None else 'absent'}"
            f"; X: {'present' if adata.X is not None else 'absent'}"
        )
    return key


def _h5ad_matrix(adata: ad.AnnData, key: str) -> tuple[Any, pd.DataFrame]:
    """(matrix, var) of a source key; ``.raw`` brings its own gene axis."""
    if key == "X":
        return adata.X, adata.var
    if key == "raw":
        return adata.raw.X, adata.raw.var
    return adata.layers[key[len("layers/") :]], adata.var


def _backed_sample(matrix: Any) -> Any:
    """The first rows of an on-disk X: enough to tell normalised data from counts without a full pass."""
    n_rows = matrix.shape[0]
    n_cols = max(matrix.shape[1], 1)
    rows = max(1, min(n_rows, _BLOCK_ELEMENTS // n_cols, 2000))
    return matrix[:rows]


def _resolve_auto_source(adata: ad.AnnData, path: Path, backed: bool) -> str:
    """layers['counts'], else integer X, else integer .raw; otherwise explain why nothing qualifies."""
    if "counts" in adata.layers.keys():
        # A layer named 'counts' is taken on trust only if it holds whole numbers:
        # unchecked, normalised values stored under that name passed as raw counts.
        problem = _describe_non_integer(
            "layers['counts']", adata.layers["counts"], obs_names=adata.obs_names, var_names=adata.var_names
        )
        if problem is None:
            return "layers/counts"
        raise InputDataError(
            f"{path}: layers['counts'] is not raw counts: {problem} — point data.counts_source "
            "(predict: --counts-source) at the raw counts "
            f"(this file has: {', '.join(_h5ad_sources(adata))})"
        )
    problems: list[str] = []
    if adata.X is None:
        problems.append("X is empty")
    else:
        x = _backed_sample(adata.X) if backed else adata.X
        problem = _describe_non_integer("X", x, obs_names=adata.obs_names, var_names=adata.var_names)
        if problem is None:
            return "X"
        problems.append(problem)
    if adata.raw is not None:
        if backed:
            problems.append(".raw cannot be used in backed mode")
        else:
            problem = _describe_non_integer(
                ".raw.X", adata.raw.X, obs_names=adata.obs_names, var_names=adata.raw.var_names
            )
            if problem is None:
                return "raw"
            problems.append(problem)
    raise InputDataError(
        f"{path}: the data look normalised, not raw counts: {'; '.join(problems)}; "
        "no layers['counts'] or integer .raw found — "
        "point data.counts_source (predict: --counts-source) at the raw counts "
        f"(this file has: {', '.join(_h5ad_sources(adata)) or 'nothing'})"
    )


def _counts_key(
    adata: ad.AnnData, counts_source: str, path: Path | str, *, backed: bool, require_integer: bool
) -> str:
    """'X', 'raw' or 'layers/<name>': the source ``counts_source`` names, or the one ``auto`` finds."""
    if counts_source != "auto":
        return _normalise_source(counts_source, adata, path)
    if require_integer:
        return _resolve_auto_source(adata, path, backed)
    try:
        return _resolve_auto_source(adata, path, backed)
    except InputDataError:  # nothing integer: the caller accepts X as it is
        return "layers/counts" if "counts" in adata.layers.keys() else "X"


def _checked_source(
    adata: ad.AnnData,
    key: str,
    *,
    counts_source: str,
    path: Path | str,
    backed: bool,
    require_integer: bool,
) -> tuple[Any, pd.DataFrame]:
    """(matrix, var) of ``key``; a source the user named must hold whole numbers (auto checked already)."""
    matrix, var = _h5ad_matrix(adata, key)
    if matrix is None:
        raise InputDataError(f"{path}: {key} holds no matrix")
    if counts_source != "auto" and require_integer:
        label = ".raw.X" if key == "raw" else key
        problem = _describe_non_integer(
            label,
            _backed_sample(matrix) if backed else matrix,
            obs_names=adata.obs_names,
            var_names=var.index,
        )
        if problem is not None:
            raise InputDataError(
                f"{path}: counts_source {counts_source!r} is not raw counts: {problem} "
                "— point data.counts_source (predict: --counts-source) at the raw counts "
                f"(this file has: {', '.join(_h5ad_sources(adata))})"
            )
    return matrix, var


def counts_matrix(
    adata: ad.AnnData, *, counts_source: str = "auto", source: str = "AnnData", require_integer: bool = True
) -> tuple[str, Any, pd.Index]:
    """(source key, matrix, gene names) of the raw counts inside an AnnData already in memory or backed.

    The same choice as :func:`read_counts` makes for an ``.h5ad`` (``auto``: ``layers['counts']``,
    else integer ``X``, else integer ``.raw``), for callers such as ``oncopersistnet.annotate`` that
    are handed an AnnData rather than a file. The matrix is returned as stored (sparse, dense or
    on disk), never copied; ``source`` names the data in messages.
    """
    backed = adata.isbacked
    key = _counts_key(adata, counts_source, source, backed=backed, require_integer=require_integer)
    matrix, var = _checked_source(
        adata, key, counts_source=counts_source, path=source, backed=backed, require_integer=require_integer
    )
    return key, matrix, pd.Index(var.index.astype(str))


def _read_h5ad_counts(
    path: Path, counts_source: str, *, backed: bool, require_integer: bool = True
) -> tuple[ad.AnnData, dict[str, Any]]:
    adata = read_h5ad(path, backed=backed)
    detected = counts_source == "auto"
    if detected and backed and "counts" not in adata.layers.keys() and adata.raw is not None:
        # An integer .raw (the usual scanpy layout) cannot stream: judge X on a sample,
        # and if X is not counts, decide in memory where .raw can be checked.
        if (
            _describe_non_integer(
                "X", _backed_sample(adata.X), obs_names=adata.obs_names, var_names=adata.var_names
            )
            is not None
        ):
            adata.file.close()
            return _read_h5ad_counts(path, counts_source, backed=False, require_integer=require_integer)
    key = _counts_key(adata, counts_source, path, backed=backed, require_integer=require_integer)
    if backed and key != "X":
        logger.warning(
            "%s: counts are in %s, not X; reading the file into memory (streaming needs counts in X)",
            path,
            key,
        )
        adata.file.close()
        return _read_h5ad_counts(path, key, backed=False, require_integer=require_integer)
    matrix, var = _checked_source(
        adata, key, counts_source=counts_source, path=path, backed=backed, require_integer=require_integer
    )
    description = f"counts from {key} ({'auto' if detected else 'given'})"
    if backed:
        # Integer-ness was judged on the first rows only: a full pass would read the whole file twice.
        adata.obs_names = adata.obs_names.astype(str)
        return adata, {"counts_source": key, "backed": True, "_description": description + ", backed"}

    var = var.copy()
    var.index = var.index.astype(str)
    obs = adata.obs.copy()
    obs.index = obs.index.astype(str)
    out = ad.AnnData(X=_compact(matrix), obs=obs, var=var)
    return out, {"counts_source": key, "_description": description}


# --------------------------------------------------------------------------- 10x folder


def _find_10x_file(folder: Path, prefix: str, names: Sequence[str]) -> Path | None:
    for name in names:
        for candidate in (folder / f"{prefix}{name}", folder / f"{prefix}{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _10x_prefix(path: Path) -> tuple[Path, str]:
    """(folder, file-name prefix).

    GEO renames files 'GSM123_matrix.mtx.gz'; the prefix keeps them together.
    """
    if path.is_file():
        name = path.name
        stem = name[:-3] if name.lower().endswith(".gz") else name
        prefix = stem[: -len("matrix.mtx")] if stem.endswith("matrix.mtx") else ""
        return path.parent, prefix
    if _find_10x_file(path, "", ["matrix.mtx"]) is None:
        matches = sorted(
            p.name for p in path.glob("*matrix.mtx*") if re.search(r"matrix\.mtx(\.gz)?$", p.name)
        )
        if len(matches) == 1:
            return path, matches[0][: matches[0].index("matrix.mtx")]
    return path, ""


def _read_tsv_columns(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(
            path,
            sep="\t",
            header=None,
            dtype=str,
            compression="infer",
            keep_default_na=False,
            quoting=csv.QUOTE_NONE,
        )
    except pd.errors.EmptyDataError as exc:
        raise InputDataError(f"{path}: file is empty") from exc
    except pd.errors.ParserError as exc:
        raise InputDataError(f"{path}: not a tab-separated file ({_cause(exc)})") from exc
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        raise _unreadable(path, exc) from exc


def _gene_var(
    ids: np.ndarray, names: np.ndarray | None, types: np.ndarray | None
) -> tuple[pd.DataFrame, np.ndarray, int]:
    """var (index = names, or ids when there are no names) and the mask of Gene Expression features."""
    names = ids if names is None else names
    var = pd.DataFrame({"gene_ids": ids.astype(str)}, index=pd.Index(names.astype(str)))
    keep = np.ones(len(ids), dtype=bool)
    if types is not None:
        var["feature_types"] = types.astype(str)
        keep = var["feature_types"].to_numpy() == "Gene Expression"
    return var, keep, int((~keep).sum())


class _ReplacedFirstLine(io.RawIOBase):
    """A binary stream that yields ``first`` and then the rest of ``handle``."""

    def __init__(self, first: bytes, handle: Any) -> None:
        self._pending, self._handle = first, handle

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._pending or self._handle.read(len(buffer))
        n = min(len(chunk), len(buffer))
        buffer[:n], self._pending = chunk[:n], chunk[n:]
        return n


def _read_mtx(matrix_file: Path) -> sparse.coo_matrix:
    """A Matrix Market file as COO, refusing non-integer entries under an ``integer`` header.

    fast_matrix_market reads ``2.5`` in an ``integer`` file as 2 without a word, so
    such a file is parsed as ``real`` and its values checked, then made integer again
    (re-read as declared if a value is beyond 2**53, where float64 is not exact).
    """

    def opener() -> Any:
        return (
            gzip.open(matrix_file, "rb")
            if matrix_file.name.lower().endswith(".gz")
            else open(matrix_file, "rb")
        )

    with opener() as handle:
        banner = handle.readline()
        tokens = banner.split()
        declared_integer = len(tokens) >= 4 and tokens[3].lower() == b"integer"
        if declared_integer:
            banner = banner.replace(tokens[3], b"real", 1)
        coo = scipy.io.mmread(io.BufferedReader(_ReplacedFirstLine(banner, handle)))
    if not sparse.issparse(coo):
        coo = sparse.coo_matrix(coo)
    if declared_integer:
        coo = sparse.coo_matrix(coo)
        with np.errstate(invalid="ignore"):
            bad = ~(np.floor(coo.data) == coo.data)
        if bad.any():
            i = int(np.argmax(bad))
            raise InputDataError(
                f"{matrix_file}: the header declares integer values but the entry at row {coo.row[i] + 1}, "
                f"column {coo.col[i] + 1} is {float(coo.data[i]):g}"
            )
        if coo.nnz and np.abs(coo.data).max() > 2**53:
            with opener() as handle:
                return sparse.coo_matrix(scipy.io.mmread(handle))
        coo.data = coo.data.astype(np.int64)
    return coo


def _read_10x_mtx(path: Path) -> tuple[ad.AnnData, dict[str, Any]]:
    folder, prefix = _10x_prefix(path)
    matrix_file = _find_10x_file(folder, prefix, ["matrix.mtx"])
    features_file = _find_10x_file(folder, prefix, ["features.tsv", "genes.tsv"])
    barcodes_file = _find_10x_file(folder, prefix, ["barcodes.tsv"])
    missing = [
        label
        for label, found in (
            (f"{prefix}matrix.mtx(.gz)", matrix_file),
            (f"{prefix}features.tsv(.gz) or {prefix}genes.tsv(.gz)", features_file),
            (f"{prefix}barcodes.tsv(.gz)", barcodes_file),
        )
        if found is None
    ]
    if missing:
        # A folder named like a file (cells.h5ad/) is read as a 10x folder; say what it is.
        suffix = Path(folder.name.lower().removesuffix(".gz")).suffix
        hint = (
            f" ({folder.name} is a directory, not a {suffix} file)"
            if suffix in (".h5ad", ".h5", ".hdf5", ".csv", ".tsv", ".tab", ".txt", ".mtx")
            else ""
        )
        raise InputDataError(
            f"{folder}: not a complete 10x Genomics directory, missing {', '.join(missing)}{hint}"
        )
    assert matrix_file is not None and features_file is not None and barcodes_file is not None

    features = _read_tsv_columns(features_file)
    barcodes = _read_tsv_columns(barcodes_file).iloc[:, 0].to_numpy()
    try:
        coo = _read_mtx(matrix_file)
    except InputDataError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise _unreadable(matrix_file, exc) from exc
    except Exception as exc:  # fast_matrix_market raises ValueError/RuntimeError on a malformed body
        raise InputDataError(f"{matrix_file}: not a readable Matrix Market file ({_cause(exc)})") from exc

    n_features, n_barcodes = len(features), len(barcodes)
    if coo.shape == (n_features, n_barcodes):
        cells_by_genes = sparse.csr_matrix(coo.T)
    elif coo.shape == (n_barcodes, n_features):
        # Some tools write cells x genes; the file names still tell which axis is which.
        logger.info("%s is stored cells x genes; reading it as such", matrix_file)
        cells_by_genes = sparse.csr_matrix(coo)
    else:
        raise InputDataError(
            f"{folder}: {matrix_file.name} is {coo.shape[0]} x {coo.shape[1]} but there are "
            f"{n_features} features in {features_file.name} and {n_barcodes} barcodes in {barcodes_file.name}"
        )
    ids = features.iloc[:, 0].to_numpy()
    names = features.iloc[:, 1].to_numpy() if features.shape[1] > 1 else None
    types = features.iloc[:, 2].to_numpy() if features.shape[1] > 2 else None
    var, keep, n_other = _gene_var(ids, names, types)
    if n_other:
        cells_by_genes = cells_by_genes[:, np.flatnonzero(keep)]
        var = var.iloc[keep]
    adata = ad.AnnData(
        X=_compact(cells_by_genes),
        obs=pd.DataFrame(index=pd.Index(barcodes.astype(str))),
        var=var,
    )
    description = f"genes from {features_file.name}"
    if n_other:
        description += f", dropped {n_other} non-'Gene Expression' features"
    return adata, {"dropped_features": n_other, "_description": description}


# --------------------------------------------------------------------------- 10x .h5


def _strings(dataset: h5py.Dataset) -> np.ndarray:
    """A string dataset as str, whether stored fixed-length bytes or variable-length UTF-8."""
    try:
        return np.asarray(dataset.asstr()[()], dtype=str)
    except (TypeError, ValueError):
        return np.asarray(dataset[()]).astype(str)


def _read_10x_h5(path: Path) -> tuple[ad.AnnData, dict[str, Any]]:
    try:
        handle = h5py.File(path, "r")
    except Exception as exc:  # h5py raises OSError subclasses with varied messages for corrupt files
        raise InputDataError(f"{path}: not a readable HDF5 file ({hdf5_problem(path, exc)})") from exc
    try:
        with handle:
            if "matrix" in handle and isinstance(handle["matrix"], h5py.Group):
                group = handle["matrix"]
                layout = "Cell Ranger v3+"
                needed = ("data", "indices", "indptr", "shape", "barcodes", "features")
                missing = [k for k in needed if k not in group]
                if missing:
                    raise InputDataError(f"{path}: 10x 'matrix' group lacks {', '.join(missing)}")
                feats = group["features"]
                if "id" not in feats:
                    raise InputDataError(f"{path}: 10x 'matrix/features' group lacks 'id'")
                ids = _strings(feats["id"])
                names = _strings(feats["name"]) if "name" in feats else None
                types = _strings(feats["feature_type"]) if "feature_type" in feats else None
            else:
                v2_keys = {"data", "indices", "indptr", "shape", "barcodes", "genes"}
                genomes = [
                    k for k, v in handle.items() if isinstance(v, h5py.Group) and v2_keys <= set(v.keys())
                ]
                if not genomes:
                    hint = (
                        "; it looks like an AnnData file: name it .h5ad"
                        if {"X", "obs", "var"} <= set(handle.keys())
                        else ""
                    )
                    raise InputDataError(f"{path}: not a 10x Genomics .h5 file (no 'matrix' group){hint}")
                if len(genomes) > 1:
                    raise InputDataError(
                        f"{path}: Cell Ranger v2 file with several genomes ({', '.join(genomes)}); "
                        "export one genome or convert the file to .h5ad"
                    )
                group = handle[genomes[0]]
                layout = f"Cell Ranger v2 (genome {genomes[0]})"
                ids = _strings(group["genes"])
                names = _strings(group["gene_names"]) if "gene_names" in group else None
                types = None
            barcodes = _strings(group["barcodes"])
            data = group["data"][()]
            indices = group["indices"][()]
            indptr = group["indptr"][()]
            n_genes, n_cells = (int(v) for v in group["shape"][()][:2])
    except InputDataError:
        raise
    except Exception as exc:  # truncated datasets and odd layouts surface as OSError/KeyError/ValueError
        raise InputDataError(f"{path}: cannot read 10x .h5 contents ({_cause(exc)})") from exc

    if len(ids) != n_genes or len(barcodes) != n_cells:
        raise InputDataError(
            f"{path}: shape says {n_genes} genes x {n_cells} cells but the file lists "
            f"{len(ids)} features and {len(barcodes)} barcodes"
        )
    try:
        # The genes x cells CSC arrays read as CSR are exactly cells x genes: no copy, no transpose.
        matrix = sparse.csr_matrix((data, indices, indptr), shape=(n_cells, n_genes))
        matrix.check_format(full_check=True)
    except ValueError as exc:
        raise InputDataError(f"{path}: inconsistent sparse matrix arrays ({_cause(exc)})") from exc
    var, keep, n_other = _gene_var(ids, names, types)
    if n_other:
        matrix = matrix[:, np.flatnonzero(keep)]
        var = var.iloc[keep]
    adata = ad.AnnData(X=_compact(matrix), obs=pd.DataFrame(index=pd.Index(barcodes)), var=var)
    description = f"{layout} layout"
    if n_other:
        description += f", dropped {n_other} non-'Gene Expression' features"
    return adata, {"dropped_features": n_other, "_description": description}


# --------------------------------------------------------------------------- CSV / TSV


def _looks_like_cell(name: str) -> bool:
    return bool(_BARCODE_RE.match(name) or _EMBEDDED_BARCODE_RE.search(name) or _CELL_WORD_RE.search(name))


def _axis_profile(names: Sequence[str]) -> dict[str, float]:
    """Fractions of names that look like cells, Ensembl gene IDs and gene symbols."""
    names = [str(n).strip() for n in names]
    n = max(len(names), 1)
    cell = sum(_looks_like_cell(s) for s in names)
    ensembl = sum(bool(_ENSEMBL_RE.match(s)) for s in names)
    symbol = sum(bool(_SYMBOL_RE.match(s)) and len(s) <= 20 and not _looks_like_cell(s) for s in names)
    return {"cell": cell / n, "ensembl": ensembl / n, "symbol": symbol / n}


def _detect_orientation(header: Sequence[str], row_names: Sequence[str], corner: str | None) -> str | None:
    """Decide which axis of a count table holds genes; None when the names do not say.

    Rules, first decisive one wins (``cols`` = header names, ``rows`` = a sample
    of the first-column names):

    1. Cell-like names (a barcode ``^[ACGT]{8,}(-\\d+)?$``, a run of 12+ ACGT
       letters inside a longer id, or containing "cell"/"barcode"): an axis
       where at least half the names look like cells while under 10% do on the
       other axis holds the cells.
    2. Ensembl gene IDs (``^ENS[A-Z]*G\\d{11}(\\.\\d+)?$``): an axis with at
       least half Ensembl IDs while under 10% on the other axis holds the genes.
    3. Gene-symbol-like tokens (letter first, letters/digits with ``.-_``
       separators, at most 20 characters, not cell-like): an axis with at
       least 80% while the other has at most 20% holds the genes (catches
       symbols against numeric cell ids such as ``1, 2, 3``).
    4. The header's first field (the label of the row-name column), when it
       is a word such as ``gene``/``symbol``/``gene_id`` (rows are genes) or
       ``cell``/``barcode`` (rows are cells).

    The number of entries per axis is deliberately not used: a 300-gene panel
    over 5,000 cells and 20,000 genes over 500 cells both exist, so "more
    entries means genes" would be wrong about as often as right.
    """
    cols, rows = _axis_profile(header), _axis_profile(row_names)
    if cols["cell"] >= 0.5 and rows["cell"] < 0.1:
        return "genes_x_cells"
    if rows["cell"] >= 0.5 and cols["cell"] < 0.1:
        return "cells_x_genes"
    if cols["ensembl"] >= 0.5 and rows["ensembl"] < 0.1:
        return "cells_x_genes"
    if rows["ensembl"] >= 0.5 and cols["ensembl"] < 0.1:
        return "genes_x_cells"
    if cols["symbol"] >= 0.8 and rows["symbol"] <= 0.2:
        return "cells_x_genes"
    if rows["symbol"] >= 0.8 and cols["symbol"] <= 0.2:
        return "genes_x_cells"
    label = (corner or "").strip().strip('"').lower()
    if label in _GENE_CORNER:
        return "genes_x_cells"
    if label in _CELL_CORNER:
        return "cells_x_genes"
    return None


def _table_head(path: Path, sep: str) -> tuple[list[str], str | None, int]:
    """(column names, corner label or None, fields per data row), from the first two lines.

    R's ``write.table`` leaves out the corner field, so the header can be one
    field shorter than the rows; then every header field is a column name.
    """
    try:
        with _open_text(path) as handle:
            reader = csv.reader(handle, delimiter=sep)
            header = next(reader, None)
            first = next(reader, None)
            while first is not None and not first:  # blank lines
                first = next(reader, None)
    except (OSError, EOFError, UnicodeDecodeError, zlib.error, csv.Error) as exc:
        raise _unreadable(path, exc) from exc
    if header is None or not header:
        raise InputDataError(f"{path}: file is empty")
    if first is None:
        raise InputDataError(f"{path}: the table has a header but no data rows (0 rows)")
    if len(first) == len(header):
        return header[1:], header[0], len(first)
    if len(first) == len(header) + 1:
        return header, None, len(first)
    raise InputDataError(
        f"{path}: ragged table: line 2 has {len(first)} fields but the header (line 1) has {len(header)}"
    )


def _find_ragged_line(path: Path, sep: str, n_fields: int) -> str | None:
    """Line number and field count of the first data row whose length differs; None if all match.

    pandas pads short rows with NaN silently, so this scan runs (once) only
    when a chunk holds NaN, to tell a missing field from a genuine NaN value.
    """
    with _open_text(path) as handle:
        reader = csv.reader(handle, delimiter=sep)
        next(reader, None)
        for row in reader:
            if row and len(row) != n_fields:
                return f"line {reader.line_num} has {len(row)} fields, expected {n_fields}"
    return None


def _chunk_to_sparse(
    chunk: pd.DataFrame, path: Path, *, columns: Sequence[str], row_axis: str
) -> sparse.csr_matrix:
    """One chunk of a table as CSR; non-numeric entries fail naming row and column.

    The table is parsed without NA detection (so names stay as written); an
    empty field or a missing-value spelling such as ``NA`` in a count column is
    NaN here, as pandas' default parsing would have made it.
    """
    numeric = chunk
    object_cols = [i for i, dtype in enumerate(chunk.dtypes) if dtype.kind not in "iufb"]
    if object_cols:
        numeric = chunk.copy()
        for i in object_cols:
            original = chunk.iloc[:, i]
            converted = pd.to_numeric(original, errors="coerce")
            bad = converted.isna() & original.notna() & ~original.isin(_NA_STRINGS)
            if bad.any():
                row = bad.to_numpy().nonzero()[0][0]
                raise InputDataError(
                    f"{path}: non-numeric value {str(original.iloc[row])!r} at row "
                    f"{str(chunk.index[row])!r} ({row_axis}), column {str(columns[i])!r}; "
                    "a count table must hold numbers only"
                )
            numeric[numeric.columns[i]] = converted
    values = numeric.to_numpy()
    if values.dtype.kind not in "iufb":
        values = values.astype(np.float64)
    return sparse.csr_matrix(values)


def _read_table(path: Path, fmt: str, orientation: str) -> tuple[ad.AnnData, dict[str, Any]]:
    if orientation not in ORIENTATIONS:
        raise InputDataError(f"orientation {orientation!r} is not one of {', '.join(ORIENTATIONS)}")
    sep = "," if fmt == "csv" else "\t"
    columns, corner, n_fields = _table_head(path, sep)

    read_opts = dict(
        sep=sep,
        header=None,
        skiprows=1,
        index_col=0,
        dtype={0: str},
        # keep_default_na=False keeps row names such as "NA" or "" as written; the
        # NA spellings in count fields become NaN in _chunk_to_sparse instead.
        compression="infer",
        keep_default_na=False,
        skip_blank_lines=True,
        low_memory=False,  # we chunk ourselves; pandas' own sub-chunking only adds per-column overhead
    )
    detected = orientation == "auto"
    chunk_rows = max(_TABLE_MIN_CHUNK_ROWS, _TABLE_CHUNK_ELEMENTS // max(len(columns), 1))
    blocks: list[sparse.csr_matrix] = []
    row_names: list[np.ndarray] = []
    nan_checked = False
    row_axis = "cell" if orientation == "cells_x_genes" else "gene"
    try:
        # closed on every exit: a ragged row raising mid-file must not leave the file open
        with pd.read_csv(path, chunksize=chunk_rows, **read_opts) as reader:
            for chunk in reader:
                if chunk.shape[1] != len(columns):
                    raise InputDataError(
                        f"{path}: ragged table: rows have {chunk.shape[1] + 1} fields, "
                        f"the header names {len(columns)} columns"
                    )
                if orientation == "auto":
                    # The first chunk's row names are the sample: no extra pass over the file.
                    orientation = (
                        _detect_orientation(
                            columns, chunk.index[:_ORIENTATION_SAMPLE_ROWS].astype(str).tolist(), corner
                        )
                        or ""
                    )
                    if not orientation:
                        raise InputDataError(
                            f"{path}: cannot tell whether rows are cells or genes (header e.g. "
                            f"{_examples(columns)}, rows e.g. {_examples(chunk.index)}); set orientation to "
                            "'cells_x_genes' or 'genes_x_cells'"
                        )
                    row_axis = "cell" if orientation == "cells_x_genes" else "gene"
                block = _chunk_to_sparse(chunk, path, columns=columns, row_axis=row_axis)
                if not nan_checked and block.dtype.kind == "f" and np.isnan(block.data).any():
                    nan_checked = True
                    ragged = _find_ragged_line(path, sep, n_fields)
                    if ragged:
                        raise InputDataError(f"{path}: ragged table: {ragged}")
                blocks.append(block)
                row_names.append(chunk.index.to_numpy(dtype=str))
    except InputDataError:
        raise
    except Exception as exc:
        raise _table_error(path, exc) from exc

    if not blocks:
        raise InputDataError(f"{path}: the table has a header but no data rows (0 rows)")
    adata = _stack_table(blocks, row_names, columns, cells_are_rows=orientation == "cells_x_genes")
    how = "detected" if detected else "given"
    return adata, {
        "orientation": orientation,
        "orientation_detected": detected,
        "_description": f"orientation {orientation} ({how})",
    }


def _stack_table(
    blocks: list[sparse.csr_matrix], row_names: list[np.ndarray], columns: Any, *, cells_are_rows: bool
) -> ad.AnnData:
    """One AnnData from the table's row blocks, cells as rows; integers stay integers."""
    kinds = {b.dtype.kind for b in blocks}
    common = np.int64 if kinds <= set("iub") else np.float64
    stacked = sparse.vstack([b.astype(common) for b in blocks], format="csr")
    names = np.concatenate(row_names)
    col_names = np.asarray([str(c) for c in columns], dtype=str)
    if cells_are_rows:
        matrix, obs_names, var_names = stacked, names, col_names
    else:
        matrix, obs_names, var_names = stacked.T.tocsr(), col_names, names
    return ad.AnnData(
        X=_compact(matrix),
        obs=pd.DataFrame(index=pd.Index(obs_names)),
        var=pd.DataFrame(index=pd.Index(var_names)),
    )


def _table_error(path: Path, exc: BaseException) -> InputDataError:
    """Translate pandas/gzip failures while reading a table into one readable line."""
    if isinstance(exc, pd.errors.ParserError):
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if match:
            expected, line, saw = match.groups()
            return InputDataError(f"{path}: ragged table: line {line} has {saw} fields, expected {expected}")
        return InputDataError(f"{path}: cannot parse the table ({_cause(exc)})")
    if isinstance(exc, pd.errors.EmptyDataError):
        return InputDataError(f"{path}: file is empty")
    if isinstance(exc, (OSError, EOFError, UnicodeDecodeError, zlib.error)):
        return _unreadable(path, exc)
    return InputDataError(f"{path}: cannot read the table ({_cause(exc)})")


# --------------------------------------------------------------------------- metadata


def _read_metadata_table(path: Path, cell_column: str | None) -> pd.DataFrame:
    """A metadata table with its id column read as strings (so '001' stays '001')."""
    if not path.exists():
        raise InputDataError(f"{path}: no such file or directory")
    name = path.name.lower()
    stem = name[:-3] if name.endswith(".gz") else name
    if stem.endswith(".csv"):
        sep = ","
    elif stem.endswith(".tsv") or stem.endswith(".tab"):
        sep = "\t"
    elif stem.endswith(".txt"):
        first = _read_first_line(path)
        sep = "," if ("," in first and "\t" not in first) else "\t"
    else:
        raise InputDataError(f"unknown metadata format '{path.name}': expected .csv or .tsv (optionally .gz)")
    try:
        header = pd.read_csv(path, sep=sep, nrows=0, compression="infer")
        id_col = header.columns[0] if cell_column is None else cell_column
        if id_col not in header.columns:
            raise InputDataError(
                f"{path}: no column {cell_column!r} (cell_column); columns are: "
                f"{', '.join(map(str, header.columns))}"
            )
        # low_memory=False: one dtype per column, not a mix across chunks (which h5ad cannot store)
        meta = pd.read_csv(
            path, sep=sep, dtype={id_col: str}, compression="infer", low_memory=False, keep_default_na=True
        )
    except InputDataError:
        raise
    except Exception as exc:
        raise _table_error(path, exc) from exc
    if meta.empty:
        raise InputDataError(f"{path}: metadata table has no rows")
    return meta
