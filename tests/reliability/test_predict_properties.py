"""Properties of predict_file (what `oncopersistnet predict` runs) against a real small ONNX model.

Random inputs: a few cells over a random subset of the model's genes in random
order, extra genes the model does not know (unicode, blank, numeric-looking),
repeated columns of one gene, counts with NaN, inf, negative, non-integer and
huge values, written as .h5ad (streamed, backed) or .csv (read whole). Every
call ends in one of two ways:

* probabilities equal to the model run on the independently aligned matrix
  (input columns summed per model gene, NaN where the input lacks one), so
  they do not depend on column order, extra genes, chunking or other rows;
* a project error with a one-line message naming the input, and then no
  output file and no temporary file beside it.

What must be refused: an empty input, repeated cell ids, NaN/inf/negative
counts, non-integer counts unless allowed, too few model genes or selected
genes (below ``min_gene_fraction``), and counts too large for float32.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import CALL_RULE
from hypothesis import event, given
from hypothesis import strategies as st
from strategies import (
    FLOAT32_MAX,
    Expectation,
    assert_clear_error,
    examples,
    is_whole,
    names,
    unique_names,
    write_h5ad,
    write_table,
)
from test_export_inference import onnx_path  # noqa: F401  (fixture: the test model exported to ONNX)

from oncopersistnet.errors import OncoPersistNetError
from oncopersistnet.genes import harmonize_names
from oncopersistnet.inference import OnnxPersisterModel, predict_file
from oncopersistnet.inference.predict import MAX_CELL_TOTAL


@pytest.fixture(scope="module")
def model(onnx_path) -> OnnxPersisterModel:
    model = OnnxPersisterModel(onnx_path)
    mapped, _ = harmonize_names(model.genes)
    assert list(mapped) == model.genes  # model genes are their own harmonised names: exact names match
    return model


# Values injected over the Poisson background, and what each must lead to.
SPECIALS = {
    "nan": np.nan,
    "inf": np.inf,
    "negative": -1.0,
    "non-integer": 2.5,
    "huge 2**40": 2.0**40,
    "huge 1e30": 1e30,
    "beyond float32": 1e39,
    "overflowing total": 3e38,
}


@st.composite
def predict_cases(draw, model: OnnxPersisterModel, scorable: bool = False):
    """One input for predict_file; ``scorable`` draws only inputs that must be scored."""
    genes = model.genes
    n_cells = draw(st.sampled_from([1, 1, 2, 3, 5] if scorable else [0, 1, 1, 2, 3, 3, 5]))
    # how many model genes the input has: around the 50% minimum, and the extremes
    n_present = draw(
        st.sampled_from([220, 299, 300] if scorable else [0, 1, 149, 150, 151, 220, 299, 300, 300, 300])
    )
    present = draw(st.permutations(range(len(genes))))[:n_present]
    n_repeat = draw(st.sampled_from([0, 0, 1, 2])) if n_present else 0
    repeated = (
        [
            present[i]
            for i in draw(st.lists(st.integers(0, n_present - 1), min_size=n_repeat, max_size=n_repeat))
        ]
        if n_present
        else []
    )
    known = {g.upper() for g in genes}
    extra = [
        n
        for n in draw(names(draw(st.sampled_from([0, 0, 2, 5])), prefix=draw(st.sampled_from(["", "zz-"]))))
        if harmonize_names([n])[0][0].upper() not in known
    ]
    feeds = [genes[j] for j in present + repeated] + [None] * len(extra)  # the model gene each column feeds
    columns = [genes[j] for j in present + repeated] + extra
    # symbols in another case still name the model's gene (harmonised), unless the input looks mouse-style
    for i in range(draw(st.sampled_from([0, 0, 3]))):
        if (
            i < len(present)
            and harmonize_names([columns[i].lower()])[0][0] == columns[i] != columns[i].lower()
        ):
            columns[i] = columns[i].lower()
    order = draw(st.permutations(range(len(columns))))
    seed = draw(st.integers(0, 2**16))
    counts = np.random.default_rng(seed).poisson(1.5, size=(n_cells, len(columns))).astype(np.float64)
    special = draw(
        st.sampled_from([None, "huge 2**40", "huge 1e30"] if scorable else [None, None, None, *SPECIALS])
    )
    if special is not None and counts.size:
        where = draw(
            st.lists(
                st.tuples(st.integers(0, n_cells - 1), st.integers(0, len(columns) - 1)),
                min_size=1,
                max_size=2,
            )
        )
        for row, col in where:
            counts[row, col] = SPECIALS[special]
    int_input = special is None or special.startswith("huge 2")
    cells = [f"cell-{i}" for i in range(n_cells)]
    if n_cells and draw(st.integers(0, 4)) == 0:
        cells = draw(
            unique_names(n_cells) if scorable else names(n_cells)
        )  # blank, unicode, NA-like, repeated
    return {
        "counts": counts.astype(np.int64) if int_input else counts,
        "cells": cells,
        "columns": [columns[i] for i in order],
        "feeds": [feeds[i] for i in order],
        "special": special,
        "format": draw(st.sampled_from(["h5ad", "h5ad-dense", "csv"])),
        "output": draw(st.sampled_from(["out.csv", "out.parquet"])),
        "chunk_size": draw(st.integers(1, 4)),
        "min_gene_fraction": draw(st.sampled_from([0.5] if scorable else [0.5, 0.5, 0.0, 0.9])),
        "allow_non_integer": draw(st.booleans()),
    }


def reference_counts(counts: np.ndarray, feeds: list[str | None], model_genes: list[str]) -> np.ndarray:
    """The input over the model's genes, built without the package: columns of one gene summed, NaN if
    absent."""
    out = np.full((counts.shape[0], len(model_genes)), np.nan, dtype=np.float64)
    for j, gene in enumerate(model_genes):
        cols = [i for i, feed in enumerate(feeds) if feed == gene]
        if cols:
            out[:, j] = counts[:, cols].astype(np.float64).sum(axis=1)
    return out.astype(np.float32)


def expectation(case: dict, model: OnnxPersisterModel) -> Expectation:
    counts, cells = case["counts"], case["cells"]
    values = counts.astype(np.float64)
    found = set(case["feeds"])
    gene_fraction = sum(g in found for g in model.genes) / len(model.genes)
    selected_fraction = sum(g in found for g in model.selected_genes) / len(model.selected_genes)
    if counts.size == 0:
        return Expectation(reject="empty input")
    if len(set(cells)) < len(cells):
        return Expectation(reject="repeated cell ids")
    if np.isnan(values).any() or np.isinf(values).any():
        return Expectation(reject="NaN or inf")
    if case["format"] == "csv" and (np.abs(values) > FLOAT32_MAX).any():
        return Expectation(
            reject="beyond float32"
        )  # read_counts refuses it; backed .h5ad leaves it to the total check
    if not is_whole(values) and not case["allow_non_integer"]:
        return Expectation(reject="non-integer counts")
    if min(gene_fraction, selected_fraction) < case["min_gene_fraction"]:
        return Expectation(reject="too few model genes")
    if (values < 0).any():
        return Expectation(reject="negative counts")
    if values.sum(axis=1).max() > MAX_CELL_TOTAL:
        return Expectation(reject="cell total beyond float32")
    return Expectation()


def _write(folder: Path, case: dict) -> Path:
    counts, cells, columns = case["counts"], case["cells"], case["columns"]
    if case["format"] == "csv":
        return write_table(folder / "cells.csv", counts, cells, columns, "cells_x_genes", "cell")
    return write_h5ad(
        folder / "cells.h5ad",
        counts,
        cells,
        columns,
        "X",
        "dense" if case["format"] == "h5ad-dense" else "csr",
    )


def _predict(model: OnnxPersisterModel, path: Path, output: Path, case: dict, **changes) -> dict:
    options = (
        dict(
            chunk_size=case["chunk_size"],
            min_gene_fraction=case["min_gene_fraction"],
            progress=False,
            allow_non_integer=case["allow_non_integer"],
            orientation="cells_x_genes",
        )
        | changes
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata's notes on repeated names; the outcome is what is checked
        return predict_file(model, path, output, **options, **CALL_RULE)


def _read_predictions(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype={"cell_id": str}, keep_default_na=False)


@examples(60)
@given(data=st.data())
def test_predict_gives_the_models_probabilities_or_one_clear_error(model, data):
    case = data.draw(predict_cases(model), label="case")
    if True:  # (keeps the body's indentation: one example)
        expect = expectation(case, model)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            path = _write(folder, case)
            output = folder / "predictions" / case["output"]
            try:
                summary = _predict(model, path, output, case)
            except OncoPersistNetError as exc:
                assert_clear_error(exc, (str(path),))
                assert expect.reject, f"refused an input that must be scored: {exc}"
                event(f"refused: {expect.reject}")
                # nothing half-written: no output and no temporary file beside it
                assert not output.exists()
                assert not output.parent.exists() or list(output.parent.iterdir()) == []
                return
            assert expect.reject is None, f"scored an input that must be refused ({expect.reject})"
            event(f"scored ({case['special'] or 'plain counts'})")
            assert sorted(p.name for p in output.parent.iterdir()) == [output.name]  # no temporary file left
            table = _read_predictions(output)
            assert table["cell_id"].tolist() == case["cells"]
            expected = model.predict_proba(reference_counts(case["counts"], case["feeds"], model.genes))
            got = table["persister_probability"].to_numpy(dtype=np.float64)
            assert np.isfinite(got).all() and ((got >= 0) & (got <= 1)).all()
            np.testing.assert_allclose(got, expected, atol=1e-6 if output.suffix == ".csv" else 1e-7, rtol=0)
            clear = np.abs(expected - model.threshold) > 1e-5
            persister = table["predicted_label"].to_numpy() == "persister"
            assert (persister[clear] == (expected[clear] >= model.threshold)).all()
            assert summary["cells"] == len(case["cells"])
            assert summary["genes_matched"] == len(set(case["feeds"]) - {None})


@examples(25)
@given(data=st.data())
def test_probabilities_ignore_column_order_extra_genes_and_other_rows(model, data):
    """Metamorphic: shuffle columns, add unknown genes, reorder and subset rows: each cell keeps its
    probability."""
    case = data.draw(predict_cases(model, scorable=True), label="case")
    extra = data.draw(names(3, prefix="zz-unknown-"), label="extra genes")
    if True:  # (keeps the body's indentation: one example)
        assert expectation(case, model).reject is None
        counts, cells, columns = case["counts"], case["cells"], case["columns"]
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            base = _predict(model, _write(folder, case), folder / "a" / "out.csv", case)
            assert base["cells"] == len(cells)
            before = _read_predictions(folder / "a" / "out.csv").set_index("cell_id")["persister_probability"]

            order = data.draw(st.permutations(range(len(columns))))
            rows = data.draw(
                st.lists(st.sampled_from(range(len(cells))), min_size=1, max_size=len(cells), unique=True)
            )
            noise = np.random.default_rng(0).poisson(3.0, size=(len(rows), len(extra)))
            changed = dict(case)
            changed["counts"] = np.hstack([counts[rows][:, order], noise.astype(counts.dtype)])
            changed["cells"] = [cells[r] for r in rows]
            changed["columns"] = [columns[i] for i in order] + extra
            changed["feeds"] = [case["feeds"][i] for i in order] + [None] * len(extra)
            (folder / "b").mkdir()
            _predict(
                model,
                _write(folder / "b", changed),
                folder / "b" / "out.csv",
                changed,
                chunk_size=data.draw(st.integers(1, 5)),
            )
            after = _read_predictions(folder / "b" / "out.csv").set_index("cell_id")["persister_probability"]
            assert list(after.index) == changed["cells"]
            np.testing.assert_allclose(
                after.to_numpy(), before.loc[after.index].to_numpy(), atol=1e-6, rtol=0
            )
