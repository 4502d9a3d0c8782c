"""Properties of read_counts over random small inputs in every supported format.

Each property writes a random matrix (0-6 cells x 0-8 genes, int or float, dense
or sparse (CSR/CSC), with NaN/inf/negative/non-integer/huge values and duplicated, empty,
unicode, blank or numeric-looking names) the way a user's tool would, reads it
back and asserts one of two outcomes: the same values and names, or an
:class:`~oncopersistnet.errors.OncoPersistNetError` whose message is one line
naming the file. What read_counts must refuse, following its docstring:

* an empty matrix (no cell or no gene) and repeated cell ids, in every format;
* a finite value float32 cannot hold (it would silently become inf);
* for ``.h5ad`` with ``require_integer`` (the default), a chosen source with
  non-integer values, including a ``layers['counts']`` that is not counts.

NaN, infinity and negative values are not refused here (read_counts leaves
them to validation and predict, which have their own properties); they must
come back exactly where they were.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from strategies import (
    Expectation,
    any_name,
    assert_same_counts,
    beyond_float32,
    count_matrices,
    describe_values,
    examples,
    is_whole,
    names,
    outcome,
    tenx_name,
    unique_names,
    write_10x_dir,
    write_10x_h5,
    write_h5ad,
    write_table,
)

from oncopersistnet.data.readers import read_counts


def _expect_common(X: np.ndarray, cells: list[str], converted: bool = True) -> Expectation:
    """Refusals every format shares; ``converted`` False for a backed X, handed over as stored."""
    if X.shape[0] == 0 or X.shape[1] == 0:
        return Expectation(reject="empty matrix")
    if len(set(cells)) < len(cells):
        return Expectation(reject="repeated cell ids")
    if converted and beyond_float32(X):
        return Expectation(reject="value beyond float32")
    return Expectation()


def _read(path: Path, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata's duplicate-name warnings: the outcome is what is checked
        return read_counts(path, **options)


def _check(path: Path, expect: Expectation, names_in_message: tuple[str, ...], **options):
    """The adata read, or None after an allowed clear error (see strategies.outcome)."""
    adata = outcome(lambda: _read(path, **options), expect, names_in_message)
    if adata is None:
        event(f"refused: {expect.reject or expect.may_reject}")
    else:
        event("read")
    return adata


def _note(X: np.ndarray, cells: list[str], genes: list[str]) -> None:
    """Statistics (pytest --hypothesis-show-statistics): which troublemakers were read back."""
    for label in describe_values(X):
        event(f"read back with {label} values")
    if len(set(genes)) < len(genes):
        event("read back with repeated gene names")
    if any(not n.isascii() for n in cells + genes):
        event("read back with unicode names")
    if len(cells) == 1:
        event("read back one cell")


# --------------------------------------------------------------------------- .h5ad


@st.composite
def named_counts(draw, allow: Callable[[str], bool] = any_name) -> dict[str, Any]:
    """What every reader case starts from: a count matrix ``X`` with its ``cells`` and ``genes`` names."""
    X = draw(count_matrices())
    return {
        "X": X,
        "cells": draw(names(X.shape[0], allow=allow)),
        "genes": draw(names(X.shape[1], allow=allow)),
    }


@st.composite
def h5ad_cases(draw):
    return {
        **draw(named_counts()),
        "storage": draw(st.sampled_from(["dense", "csr", "csc"])),
        "require_integer": draw(st.sampled_from([True, True, False])),
        "backed": draw(st.booleans()),
    }


@pytest.mark.parametrize("explicit", [False, True], ids=["auto", "explicit"])
@pytest.mark.parametrize("layout", ["X", "layers", "raw"])
@examples(30)
@given(case=h5ad_cases())
def test_h5ad_reads_back_or_refuses_clearly(layout, explicit, case):
    """Counts in X, in layers['counts'] under a normalised X, or in .raw; found by auto or named."""
    X, cells, genes = case["X"], case["cells"], case["genes"]
    source = {"X": "X", "layers": "layers/counts", "raw": "raw"}[layout] if explicit else "auto"
    with tempfile.TemporaryDirectory() as tmp:
        path = write_h5ad(Path(tmp) / "cells.h5ad", X, cells, genes, layout, case["storage"])
        backed = case["backed"] and layout == "X"  # counts elsewhere are read into memory anyway
        # a backed X is handed over as stored, not converted to float32: predict checks its values
        expected_X, expected_genes = X, genes
        if not is_whole(X) and not case["require_integer"] and layout == "raw" and source == "auto":
            # nothing integer: auto falls back to X as it is (documented for require_integer=False)
            keep = max(len(genes) - 1, 1)
            expected_X, expected_genes = np.full((len(cells), keep), 0.5, dtype=np.float32), genes[:keep]
        expect = _expect_common(expected_X, cells, converted=not backed)
        if expect.reject is None and not is_whole(X) and case["require_integer"]:
            expect = Expectation(reject="non-integer counts with require_integer")
        adata = _check(
            path,
            expect,
            (str(path),),
            counts_source=source,
            require_integer=case["require_integer"],
            backed=case["backed"],
        )
        if adata is None:
            return
        _note(X, cells, genes)
        try:
            if adata.isbacked:
                got = adata.X[:]
                got = got.toarray() if hasattr(got, "toarray") else np.asarray(got)
                assert got.dtype == X.dtype
                np.testing.assert_array_equal(got, X)
            else:
                assert_same_counts(adata.X, expected_X)
            assert list(adata.obs_names) == cells
            assert list(adata.var_names) == expected_genes
        finally:
            if adata.isbacked:
                adata.file.close()


# --------------------------------------------------------------------------- 10x folder


@st.composite
def tenx_dir_cases(draw):
    return {
        **draw(named_counts(allow=tenx_name)),
        "legacy": draw(st.booleans()),
        "gz": draw(st.booleans()),
        "point_at_matrix": draw(st.booleans()),
    }


@examples(100)
@given(case=tenx_dir_cases())
def test_10x_directory_reads_back_or_refuses_clearly(case):
    X, cells, genes = case["X"], case["cells"], case["genes"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_10x_dir(
            Path(tmp) / "filtered_feature_bc_matrix", X, cells, genes, case["legacy"], case["gz"]
        )
        expect = _expect_common(X, cells)
        if expect.reject is None and any(not c.strip() for c in cells):
            # a blank barcodes.tsv line is no barcode: the counts then disagree, and saying so is right
            expect = Expectation(may_reject="blank barcode")
        target = (
            folder / ("matrix.mtx.gz" if case["gz"] else "matrix.mtx") if case["point_at_matrix"] else folder
        )
        adata = _check(target, expect, (str(folder),))
        if adata is None:
            return
        _note(X, cells, genes)
        assert_same_counts(adata.X, X)
        assert list(adata.obs_names) == cells
        assert list(adata.var_names) == genes
        assert adata.var["gene_ids"].tolist() == [f"ENSG{i:011d}" for i in range(1, len(genes) + 1)]


# --------------------------------------------------------------------------- 10x .h5


@st.composite
def tenx_h5_cases(draw):
    return {
        **draw(named_counts()),
        "version": draw(st.sampled_from([2, 3])),
    }


@examples(100)
@given(case=tenx_h5_cases())
def test_10x_h5_reads_back_or_refuses_clearly(case):
    X, cells, genes = case["X"], case["cells"], case["genes"]
    with tempfile.TemporaryDirectory() as tmp:
        path = write_10x_h5(Path(tmp) / "filtered_feature_bc_matrix.h5", X, cells, genes, case["version"])
        adata = _check(path, _expect_common(X, cells), (str(path),))
        if adata is None:
            return
        _note(X, cells, genes)
        assert_same_counts(adata.X, X)
        assert list(adata.obs_names) == cells
        assert list(adata.var_names) == genes


# --------------------------------------------------------------------------- CSV / TSV / TXT

SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")


@st.composite
def table_cases(draw):
    return {
        **draw(named_counts()),
        "orientation": draw(st.sampled_from(["cells_x_genes", "genes_x_cells"])),
        "suffix": draw(st.sampled_from(SUFFIXES)),
        "corner": draw(st.sampled_from([None, "", "cell", "gene", "NA", "x y"])),
    }


@examples(150)
@given(case=table_cases())
def test_table_reads_back_or_refuses_clearly(case):
    X, cells, genes, orientation = case["X"], case["cells"], case["genes"], case["orientation"]
    with tempfile.TemporaryDirectory() as tmp:
        path = write_table(
            Path(tmp) / f"counts{case['suffix']}", X, cells, genes, orientation, case["corner"]
        )
        expect = _expect_common(X, cells)
        if (
            expect.reject is None
            and ".txt" in case["suffix"]
            and any("," in n or "\t" in n for n in cells + genes)
        ):
            # a .txt says its separator by its first line only; names holding both separators blur it
            expect = Expectation(may_reject="separator inside a name of a .txt")
        adata = _check(path, expect, (str(path),), orientation=orientation)
        if adata is None:
            return
        _note(X, cells, genes)
        assert_same_counts(adata.X, X)
        assert list(adata.obs_names) == cells
        assert list(adata.var_names) == genes
        assert adata.uns["input"]["orientation"] == orientation


SYMBOLS = (
    "CD3E",
    "MS4A1",
    "GAPDH",
    "ACTB",
    "EPCAM",
    "KRT8",
    "VIM",
    "AXL",
    "NGFR",
    "KDM5A",
    "HLA-A",
    "MT-CO1",
)
ENSEMBL_IDS = tuple(f"ENSG{i:011d}" for i in range(1, 13))


@st.composite
def detectable_tables(draw):
    """Names that say which axis is which.

    Barcodes for cells, symbols or Ensembl IDs (repeats allowed) for genes.
    """
    X = draw(count_matrices(min_cells=1, min_genes=1))
    n_cells, n_genes = X.shape
    pool = draw(st.sampled_from([SYMBOLS, ENSEMBL_IDS]))
    base = draw(st.text(alphabet="ACGT", min_size=12, max_size=12))
    return {
        "X": X,
        "cells": [base + "".join("ACGT"[(i >> s) & 3] for s in (6, 4, 2, 0)) + "-1" for i in range(n_cells)],
        "genes": draw(st.lists(st.sampled_from(pool), min_size=n_genes, max_size=n_genes)),
        "orientation": draw(st.sampled_from(["cells_x_genes", "genes_x_cells"])),
        "suffix": draw(st.sampled_from(SUFFIXES)),
        "corner": draw(st.sampled_from([None, "", "gene", "cell"])),
    }


@examples(60)
@given(case=detectable_tables())
def test_table_orientation_is_detected_from_names(case):
    """With barcodes on one axis and genes on the other, auto finds the right orientation.

    Never a transposed answer.
    """
    X, cells, genes, orientation = case["X"], case["cells"], case["genes"], case["orientation"]
    corner = case["corner"]
    with tempfile.TemporaryDirectory() as tmp:
        path = write_table(Path(tmp) / f"counts{case['suffix']}", X, cells, genes, orientation, corner)
        adata = _check(path, _expect_common(X, cells), (str(path),))
        if adata is None:
            return
        assert adata.uns["input"]["orientation"] == orientation
        assert adata.uns["input"]["orientation_detected"] is True
        assert_same_counts(adata.X, X)
        assert list(adata.obs_names) == cells
        assert list(adata.var_names) == genes


@examples(20)
@given(case=h5ad_cases(), extra=unique_names(2))
def test_unknown_counts_source_is_refused_with_the_sources_available(case, extra):
    """A counts_source that is not in the file is refused, naming what the file has."""
    X, cells, genes = case["X"], case["cells"], case["genes"]
    with tempfile.TemporaryDirectory() as tmp:
        path = write_h5ad(Path(tmp) / "cells.h5ad", X, cells, genes, "X", case["storage"])
        source = "layers/" + extra[0] + "_missing"
        adata = _check(path, Expectation(reject="no such layer"), (str(path),), counts_source=source)
        assert adata is None
