"""Hypothesis strategies, writers and outcome checks shared by the reliability suite.

The writers produce files the way users' tools do (anndata, ``scipy.io.mmwrite``,
h5py following the 10x Genomics layout, pandas ``to_csv``); the checks turn the
issue's rule into assertions: every input ends in the right answer or in one
project error whose message is one line naming the file, never a library
exception and never a silently wrong value.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.io
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from scipy import sparse
from test_readers import _gzip as gzip_file  # one gzip writer for the readers' tests and these

from oncopersistnet.errors import OncoPersistNetError

# Reproducible in CI: the same examples on every run, nothing read from or written to a database.
# RELIABILITY_EXPLORE=<factor> (e.g. 20) runs that many times more examples, freshly random, to hunt bugs
# locally.
_EXPLORE = int(os.environ.get("RELIABILITY_EXPLORE", "0") or 0)
RELIABILITY = settings(
    derandomize=not _EXPLORE,
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


def examples(n: int) -> settings:
    """``RELIABILITY`` with ``n`` examples (times RELIABILITY_EXPLORE when set)."""
    return settings(RELIABILITY, max_examples=n * max(_EXPLORE, 1))


FLOAT32_MAX = float(np.finfo(np.float32).max)

# --------------------------------------------------------------------------- names

# Names users' files really contain besides plain ones: pandas' NA spellings, empty
# and blank names, numeric-looking ids, unicode, separators and quotes.
AWKWARD_NAMES = (
    "",
    " ",
    "NA",
    "nan",
    "NaN",
    "None",
    "null",
    "N/A",
    "#N/A",
    "TRUE",
    "0",
    "001",
    "1e3",
    "-1",
    "inf",
    " padded ",
    "tab\there",
    "comma,name",
    'quo"te',
    "ünïcødé",
    "基因",
    "α-β",
    "MT-CO1",
    "ENSG00000141510.17",
)
_SAFE_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), min_size=0, max_size=6
)


def any_name(_: str) -> bool:
    return True


def tenx_name(name: str) -> bool:
    """10x files are tab-separated lines without quoting: a tab or newline cannot be written."""
    return "\t" not in name and "\n" not in name and "\r" not in name


@st.composite
def names(draw, n: int, allow: Callable[[str], bool] = any_name, prefix: str = "") -> list[str]:
    """``n`` names, awkward or plain, unique except for one forced repeat about one time in four.

    Uniqueness is made, not filtered for (a filter runs out of tries on small pools):
    a name drawn twice gets its position appended.
    """
    pool = [a for a in AWKWARD_NAMES if allow(a)]
    out: list[str] = []
    for i in range(n):
        kind = draw(st.integers(0, 2))
        if kind == 0:
            name = draw(st.sampled_from(pool))
        elif kind == 1:
            name = draw(_SAFE_TEXT.filter(allow))
        else:
            name = draw(st.from_regex(r"\A[A-Z][A-Z0-9]{1,4}\Z")) + str(i)
        while prefix + name in out:
            name = f"{name}~{i}"
        out.append(prefix + name)
    if n >= 2 and draw(st.integers(0, 3)) == 0:
        i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
        out[i] = out[j]
    return out


@st.composite
def unique_names(draw, n: int, allow: Callable[[str], bool] = any_name) -> list[str]:
    out = draw(names(n, allow))
    return [name if name not in out[:i] else f"{name}~{i}" for i, name in enumerate(out)]


# --------------------------------------------------------------------------- matrices

INT_DTYPES = (np.int32, np.int64, np.uint16)
FLOAT_DTYPES = (np.float32, np.float64)
_SMALL_COUNTS = (0, 0, 0, 0, 1, 1, 2, 3, 7, 250)


def _axis_length(low: int, high: int) -> st.SearchStrategy[int]:
    """0 and 1 (empty and one-cell inputs) now and then; mostly a few, where bugs hide."""
    weighted = [n for n in range(low, high + 1) for _ in range(1 if n == 0 else 2 if n == 1 else 3)]
    return st.sampled_from(weighted)


@st.composite
def count_matrices(
    draw,
    max_cells: int = 6,
    max_genes: int = 8,
    min_cells: int = 0,
    min_genes: int = 0,
    specials: bool = True,
    float_only: bool = False,
) -> np.ndarray:
    """A small dense matrix, int or float, mostly small counts plus optional troublemakers.

    Troublemakers: NaN, +-inf, negative and non-integer values, huge values
    (2**40, 2**62 for int64; 1e30 and 1e39, which float32 cannot hold, for float64).
    """
    n_cells = draw(_axis_length(min_cells, max_cells))
    n_genes = draw(_axis_length(min_genes, max_genes))
    dtype = np.dtype(draw(st.sampled_from(FLOAT_DTYPES if float_only else INT_DTYPES + FLOAT_DTYPES)))
    pool: list[Any] = list(_SMALL_COUNTS)
    if specials:
        if dtype.kind == "i":
            pool += [-1, -3, 2**30]
            if dtype.itemsize == 8:
                pool += [2**40, 2**62]
        elif dtype.kind == "u":
            pool += [np.iinfo(dtype).max]
        else:
            pool += [np.nan, np.inf, -np.inf, -1.0, 0.5, 2.25, 1e-3, 2.0**40, 1e30]
            if dtype.itemsize == 8:
                pool += [1e39, 2.0**24 + 1]
    flat = draw(st.lists(st.sampled_from(pool), min_size=n_cells * n_genes, max_size=n_cells * n_genes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(flat, dtype=dtype).reshape(n_cells, n_genes)


def describe_values(X: np.ndarray) -> list[str]:
    """Labels for hypothesis.event: which troublemakers an example holds."""
    values = X.astype(np.float64, copy=False) if X.dtype.kind == "f" else X
    found = []
    if X.dtype.kind == "f":
        found += ["nan"] * bool(np.isnan(values).any()) + ["inf"] * bool(np.isinf(values).any())
    found += ["negative"] * bool((values < 0).any()) + ["huge"] * bool((np.abs(values) >= 2**30).any())
    found += ["non-integer"] * (not is_whole(X))
    return found


def is_whole(values: np.ndarray) -> bool:
    """Every finite value whole (NaN/inf say nothing about normalisation, as in readers)."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return bool(np.all(np.floor(finite) == finite))


def beyond_float32(values: np.ndarray) -> bool:
    """A finite value that float32 cannot hold (only possible in float64 input)."""
    if values.dtype.kind != "f" or values.dtype.itemsize <= 4:
        return False
    finite = values[np.isfinite(values)]
    return bool(np.any(np.abs(finite) > FLOAT32_MAX))


# --------------------------------------------------------------------------- writers


def write_h5ad(
    path: Path, X: np.ndarray, cells: list[str], genes: list[str], layout: str, storage: str
) -> Path:
    """``layout``: counts in ``X``, in ``layers['counts']`` under a normalised X, or in ``.raw``;
    ``storage``: ``"dense"``, ``"csr"`` or ``"csc"``."""
    counts = {"dense": X, "csr": sparse.csr_matrix(X), "csc": sparse.csc_matrix(X)}[storage]
    obs, var = (
        pd.DataFrame(index=pd.Index(cells, dtype=object)),
        pd.DataFrame(index=pd.Index(genes, dtype=object)),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicated names and object-dtype conversions
        if layout == "X":
            adata = ad.AnnData(X=counts, obs=obs, var=var)
        elif layout == "layers":
            adata = ad.AnnData(
                X=np.full(X.shape, 0.5, dtype=np.float32), obs=obs, var=var, layers={"counts": counts}
            )
        else:  # .raw holds every gene, X a normalised subset, as after scanpy's gene selection
            full = ad.AnnData(X=counts, obs=obs, var=var)
            keep = max(X.shape[1] - 1, 1) if X.shape[1] else 0
            adata = ad.AnnData(
                X=np.full((X.shape[0], keep), 0.5, dtype=np.float32), obs=obs, var=var.iloc[:keep]
            )
            adata.raw = full
        adata.write_h5ad(path)
    return path


def write_10x_dir(
    folder: Path, X: np.ndarray, cells: list[str], genes: list[str], legacy: bool, gz: bool
) -> Path:
    """Cell Ranger's folder: genes x cells Matrix Market, features.tsv (or genes.tsv), barcodes.tsv."""
    folder.mkdir()
    coo = sparse.coo_matrix(X.T)
    field = "integer" if X.dtype.kind in "iu" else "real"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scipy.io.mmwrite(folder / "matrix.mtx", coo, field=field)
    ids = [f"ENSG{i:011d}" for i in range(1, len(genes) + 1)]
    if legacy:
        lines = [f"{i}\t{g}" for i, g in zip(ids, genes, strict=True)]
        (folder / "genes.tsv").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    else:
        lines = [f"{i}\t{g}\tGene Expression" for i, g in zip(ids, genes, strict=True)]
        (folder / "features.tsv").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    (folder / "barcodes.tsv").write_text("".join(c + "\n" for c in cells), encoding="utf-8")
    if gz:
        for path in list(folder.iterdir()):
            gzip_file(path)
    return folder


def _h5_strings(values: list[str]) -> np.ndarray:
    """Fixed-length ASCII as Cell Ranger writes; variable-length UTF-8 when a name needs it."""
    if all(v.isascii() and "\x00" not in v for v in values):
        return np.array([v.encode() for v in values], dtype="S" if values else "S1")
    return np.array(values, dtype=h5py.string_dtype("utf-8"))


def write_10x_h5(path: Path, X: np.ndarray, cells: list[str], genes: list[str], version: int) -> Path:
    """Cell Ranger .h5: CSC genes x cells arrays under 'matrix' (v3) or under a genome group (v2)."""
    csc = sparse.csc_matrix(X.T)
    ids = [f"ENSG{i:011d}" for i in range(1, len(genes) + 1)]
    with h5py.File(path, "w") as f:
        group = f.create_group("matrix" if version == 3 else "GRCh38")
        group.create_dataset("data", data=csc.data)
        group.create_dataset("indices", data=csc.indices.astype(np.int64))
        group.create_dataset("indptr", data=csc.indptr.astype(np.int64))
        group.create_dataset("shape", data=np.array(csc.shape, dtype=np.int32))
        group.create_dataset("barcodes", data=_h5_strings(cells))
        if version == 3:
            feats = group.create_group("features")
            feats.create_dataset("id", data=_h5_strings(ids))
            feats.create_dataset("name", data=_h5_strings(genes))
            feats.create_dataset("feature_type", data=_h5_strings(["Gene Expression"] * len(genes)))
        else:
            group.create_dataset("genes", data=_h5_strings(ids))
            group.create_dataset("gene_names", data=_h5_strings(genes))
    return path


def write_table(
    path: Path, X: np.ndarray, cells: list[str], genes: list[str], orientation: str, corner: str | None
) -> Path:
    """pandas ``to_csv``; the separator from the name (.csv comma, .tsv/.txt tab), gzip for .gz.

    ``corner`` None writes R's layout (no corner field in the header).
    """
    frame = pd.DataFrame(X, index=pd.Index(cells, dtype=object), columns=pd.Index(genes, dtype=object))
    if orientation == "genes_x_cells":
        frame = frame.T
    sep = "," if ".csv" in path.name else "\t"
    frame.to_csv(
        path,
        sep=sep,
        index_label=False if corner is None else corner,
        compression="gzip" if path.name.endswith(".gz") else None,
    )
    return path


# --------------------------------------------------------------------------- outcome checks


@dataclass
class Expectation:
    """What reading must give: ``reject`` when it must fail, ``may_reject`` when failing is also fine."""

    reject: str | None = None
    may_reject: str | None = None


def assert_clear_error(exc: BaseException, names_in_message: tuple[str, ...]) -> None:
    """A project exception whose message is one readable line naming the file."""
    assert isinstance(exc, OncoPersistNetError), f"{type(exc).__name__} escaped: {exc!r}"
    message = str(exc)
    assert message and "\n" not in message and "Traceback" not in message, repr(message)
    assert len(message) < 1500, f"message too long ({len(message)} chars)"
    assert any(n in message for n in names_in_message), f"message does not name {names_in_message}: {message}"


def outcome(read: Callable[[], Any], expect: Expectation, names_in_message: tuple[str, ...]) -> Any:
    """Run ``read``; return its result when accepting is allowed, None after an allowed, clear error.

    Fails when a must-reject input is accepted, when an error is raised for an
    input that must be read, or when anything but a project error escapes.
    """
    try:
        result = read()
    except OncoPersistNetError as exc:
        assert_clear_error(exc, names_in_message)
        assert expect.reject or expect.may_reject, f"rejected an input that must be read: {exc}"
        return None
    assert expect.reject is None, f"accepted an input that must be rejected ({expect.reject})"
    return result


def assert_same_counts(got: Any, expected: np.ndarray) -> None:
    """Values equal to the input: integers exactly, floats as the float32 the contract promises.

    float32 is exact for integers up to 2**24; a non-integer (normalised) value or
    a larger integer written as float is rounded to the nearest float32, as
    read_counts documents.
    """
    got = got.toarray() if sparse.issparse(got) else np.asarray(got)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    if got.dtype.kind in "iu":
        assert expected.dtype.kind in "iu", f"float input came back as {got.dtype}"
        np.testing.assert_array_equal(got.astype(object), expected.astype(object))
    else:
        assert got.dtype == np.float32, got.dtype
        np.testing.assert_array_equal(got, expected.astype(np.float32))
