"""Data validation: Great Expectations on summary tables of an AnnData.

Read top to bottom: a good dataset passes, then each way raw data goes wrong
fails with a message that names the table, the column, the expectation and an
offending cell; then the summary tables themselves, the report, and Data Docs.
No mocks: every test runs Great Expectations for real.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from oncopersistnet.config import shipped_params
from oncopersistnet.data.labels import NON_PERSISTER, PERSISTER
from oncopersistnet.errors import ConfigError, DataValidationError, InputDataError
from oncopersistnet.validation import (
    ValidationReport,
    cell_summary,
    class_summary,
    gene_summary,
    sample_summary,
    validate_anndata,
)

N_CELLS, N_GENES, N_SAMPLES = 60, 40, 6
CONFIG = shipped_params().validate  # the defaults params.yaml ships with


def make_adata(
    counts: np.ndarray,
    samples: list[str] | np.ndarray,
    labels: list[str | None] | np.ndarray,
    genes: list[str] | None = None,
    *,
    sparse: bool = True,
) -> ad.AnnData:
    """An AnnData with ``counts`` as CSR (or dense), ``sample``/``label`` in obs."""
    n_cells, n_genes = counts.shape
    obs = pd.DataFrame(
        {"sample": list(samples), "label": list(labels)},
        index=[f"cell_{i}" for i in range(n_cells)],
    )
    var = pd.DataFrame(index=genes if genes is not None else [f"gene_{j}" for j in range(n_genes)])
    X = sp.csr_matrix(counts) if sparse else np.asarray(counts)
    with warnings.catch_warnings():  # anndata warns about duplicate names; tests make them
        warnings.simplefilter("ignore", UserWarning)
        return ad.AnnData(X=X, obs=obs, var=var)


@pytest.fixture()
def parts() -> dict:
    """60 cells x 40 genes of Poisson counts, 6 samples of 10 cells, both labels in each."""
    rng = np.random.default_rng(0)
    counts = rng.poisson(6.0, size=(N_CELLS, N_GENES)).astype(np.float32)
    samples = np.repeat([f"s{k}" for k in range(N_SAMPLES)], N_CELLS // N_SAMPLES).astype(object)
    labels = np.where(np.arange(N_CELLS) % 2 == 0, PERSISTER, NON_PERSISTER).astype(object)
    genes = [f"gene_{j}" for j in range(N_GENES)]
    return {"counts": counts, "samples": samples, "labels": labels, "genes": genes}


def build(parts: dict, *, sparse: bool = True) -> ad.AnnData:
    return make_adata(parts["counts"], parts["samples"], parts["labels"], parts["genes"], sparse=sparse)


def failure_for(report: ValidationReport, table: str, column: str | None, expectation: str):
    matches = [
        f for f in report.failures if f.table == table and f.column == column and f.expectation == expectation
    ]
    assert matches, f"no failure {table}.{column} {expectation}; got:\n{report.format_failures()}"
    return matches[0]


# --- the happy path ---------------------------------------------------------------------


@pytest.mark.parametrize("sparse", [True, False], ids=["csr", "dense"])
def test_good_dataset_passes(parts: dict, sparse: bool) -> None:
    report = validate_anndata(build(parts, sparse=sparse), CONFIG)

    assert report.success, report.format_failures()
    assert report.failures == []
    assert report.n_expectations >= 18
    assert report.statistics["n_cells"] == N_CELLS
    assert report.statistics["n_genes"] == N_GENES
    assert report.statistics["n_samples"] == N_SAMPLES
    assert report.statistics["n_cells_per_class"] == {NON_PERSISTER: 30, PERSISTER: 30}
    expected_zero = float((parts["counts"] == 0).mean())
    assert report.statistics["zero_fraction"] == pytest.approx(expected_zero)
    assert "passed" in report.format_failures()
    report.raise_for_failures()  # no error


# --- each way the data can be wrong -----------------------------------------------------


def _set(value: float) -> Callable[[dict], str]:
    def mutate(p: dict) -> str:
        p["counts"][12, 3] = value
        return "cell_12"

    return mutate


def _unknown_label(p: dict) -> str:
    p["labels"][7] = "resistant"
    return "cell_7"


def _missing_label(p: dict) -> str:
    p["labels"][9] = None
    return "cell_9"


def _empty_cells(p: dict) -> str:
    p["counts"][[5, 17], :] = 0
    p["counts"][5, :3] = 1  # three genes detected: below min_genes_per_cell=20
    return "cell_5"


BETWEEN = "expect_column_values_to_be_between"
BAD_CELLS = [
    # (mutation that returns the offending cell's id, column, expectation)
    pytest.param(_set(np.nan), "n_nonfinite", BETWEEN, id="nan"),
    pytest.param(_set(np.inf), "n_nonfinite", BETWEEN, id="inf"),
    pytest.param(_set(-2.0), "n_negative", BETWEEN, id="negative"),
    pytest.param(_set(2.5), "n_noninteger", BETWEEN, id="non-integer"),
    pytest.param(_unknown_label, "label", "expect_column_values_to_be_in_set", id="unknown-label"),
    pytest.param(_missing_label, "label", "expect_column_values_to_not_be_null", id="missing-label"),
    pytest.param(_empty_cells, "n_genes_detected", BETWEEN, id="empty-cells"),
]


@pytest.mark.parametrize(("mutate", "column", "expectation"), BAD_CELLS)
def test_bad_cells_fail_and_name_the_cell(
    parts: dict, mutate: Callable[[dict], str], column: str, expectation: str
) -> None:
    cell_id = mutate(parts)
    report = validate_anndata(build(parts), CONFIG)

    assert not report.success
    failure = failure_for(report, "cells", column, expectation)
    assert failure.n_rows == N_CELLS
    assert failure.n_unexpected >= 1
    assert any(example.startswith(cell_id) for example in failure.examples), failure.examples
    line = failure.message()
    assert line.startswith(f"cells.{column}: {expectation}")
    assert f"of {N_CELLS} rows" in line and cell_id in line
    assert line in report.format_failures()
    with pytest.raises(DataValidationError, match=f"cells.{column}"):
        report.raise_for_failures()


def test_bad_value_example_shows_the_count(parts: dict) -> None:
    parts["counts"][12, [1, 2]] = -1.0
    parts["counts"][40, 0] = -3.0
    report = validate_anndata(build(parts), CONFIG)

    failure = failure_for(report, "cells", "n_negative", "expect_column_values_to_be_between")
    assert failure.n_unexpected == 2
    assert failure.examples == ["cell_12=2", "cell_40=1"]
    assert "expected == 0" in failure.message()


def test_only_one_class_fails(parts: dict) -> None:
    parts["labels"][:] = NON_PERSISTER
    report = validate_anndata(build(parts), CONFIG)

    failure = failure_for(report, "classes", "label", "expect_column_distinct_values_to_contain_set")
    assert failure.examples == [f"missing {PERSISTER}"]
    assert failure.n_unexpected is None  # a table-level check: no per-row count


def test_too_few_samples_per_class_fails(parts: dict) -> None:
    # persisters only in samples s0 and s1: a three-way split by sample cannot hold them
    parts["labels"][20:] = NON_PERSISTER
    report = validate_anndata(build(parts), CONFIG)

    failure = failure_for(report, "classes", "n_samples", "expect_column_values_to_be_between")
    assert failure.examples == [f"{PERSISTER}=2"]
    assert "expected >= 3" in failure.message()


def test_small_sample_fails(parts: dict) -> None:
    parts["samples"][:4] = "tiny"  # 4 cells; s0 keeps 6: both below min_cells_per_sample=10
    report = validate_anndata(build(parts), CONFIG)

    failure = failure_for(report, "samples", "n_cells", "expect_column_values_to_be_between")
    assert sorted(failure.examples) == ["s0=6", "tiny=4"]


@pytest.mark.parametrize(
    ("genes", "expectation", "example"),
    [
        pytest.param(
            ["gene_1"] + [f"gene_{j}" for j in range(1, N_GENES)],
            "expect_column_values_to_be_unique",
            "gene_1",
            id="duplicate",
        ),
        pytest.param(
            [" "] + [f"gene_{j}" for j in range(1, N_GENES)],
            "expect_column_values_to_not_match_regex",
            " ",
            id="blank",
        ),
    ],
)
def test_bad_gene_names_fail(parts: dict, genes: list[str], expectation: str, example: str) -> None:
    parts["genes"] = genes
    report = validate_anndata(build(parts), CONFIG)

    failure = failure_for(report, "genes", "gene", expectation)
    assert example in failure.examples
    assert [f.table for f in report.failures] == ["genes"]


def test_thresholds_come_from_the_config(parts: dict) -> None:
    strict = replace(CONFIG, min_counts_per_cell=10_000)
    report = validate_anndata(build(parts), strict)

    failure = failure_for(report, "cells", "total_counts", "expect_column_values_to_be_between")
    assert failure.n_unexpected == N_CELLS
    assert "expected >= 10000" in failure.message()


def test_missing_obs_column_is_an_input_error(parts: dict) -> None:
    adata = build(parts)
    del adata.obs["sample"]
    with pytest.raises(InputDataError, match="'sample'"):
        validate_anndata(adata, CONFIG)


# --- the summary tables -----------------------------------------------------------------

TINY = np.array(
    [
        [0, 3, 0, 1],
        [2, 0, 0, 0],
        [np.nan, 1, -1, 0.5],
        [0, 0, 0, 0],
    ],
    dtype=np.float64,
)


def tiny(sparse: bool) -> ad.AnnData:
    return make_adata(
        TINY,
        samples=["a", "a", "b", "b"],
        labels=[PERSISTER, NON_PERSISTER, PERSISTER, "weird"],
        genes=["A", "B", "C", "D"],
        sparse=sparse,
    )


def test_cell_summary_by_hand() -> None:
    cells = cell_summary(tiny(sparse=True))

    assert list(cells.columns) == [
        "cell_id",
        "sample",
        "label",
        "total_counts",
        "n_genes_detected",
        "n_nonfinite",
        "n_negative",
        "n_noninteger",
    ]
    assert cells["cell_id"].tolist() == ["cell_0", "cell_1", "cell_2", "cell_3"]
    # total_counts sums finite entries only: NaN is reported through n_nonfinite
    assert cells["total_counts"].tolist() == [4.0, 2.0, 0.5, 0.0]
    assert cells["n_genes_detected"].tolist() == [2, 1, 2, 0]
    assert cells["n_nonfinite"].tolist() == [0, 0, 1, 0]
    assert cells["n_negative"].tolist() == [0, 0, 1, 0]
    assert cells["n_noninteger"].tolist() == [0, 0, 1, 0]


def test_gene_sample_and_class_summaries_by_hand() -> None:
    adata = tiny(sparse=True)

    genes = gene_summary(adata)
    assert genes["gene"].tolist() == ["A", "B", "C", "D"]
    assert genes["n_cells_detected"].tolist() == [1, 2, 0, 2]
    assert genes["total_counts"].tolist() == [2.0, 4.0, -1.0, 1.5]

    samples = sample_summary(adata)
    assert samples.to_dict("list") == {
        "sample": ["a", "b"],
        "n_cells": [2, 2],
        "n_persister": [1, 1],
        "n_non_persister": [1, 0],
    }

    classes = class_summary(adata)
    assert classes.to_dict("list") == {
        "label": [NON_PERSISTER, PERSISTER, "weird"],
        "n_cells": [1, 2, 1],
        "n_samples": [1, 2, 1],
    }


@pytest.mark.parametrize("summary", [cell_summary, gene_summary, sample_summary, class_summary])
def test_sparse_and_dense_give_equal_tables(summary: Callable[[ad.AnnData], pd.DataFrame]) -> None:
    pd.testing.assert_frame_equal(summary(tiny(sparse=True)), summary(tiny(sparse=False)))


def test_explicit_zeros_in_sparse_data_are_not_detected() -> None:
    X = sp.csr_matrix(np.array([[1.0, 2.0], [3.0, 4.0]]))
    X.data[:] = [0.0, 2.0, 0.0, 0.0]  # stored, but zero
    adata = ad.AnnData(
        X=X,
        obs=pd.DataFrame({"sample": ["a", "a"], "label": [PERSISTER, PERSISTER]}, index=["c0", "c1"]),
        var=pd.DataFrame(index=["A", "B"]),
    )
    assert cell_summary(adata)["n_genes_detected"].tolist() == [1, 0]
    assert gene_summary(adata)["n_cells_detected"].tolist() == [0, 1]


def test_integer_dense_matrix_is_accepted(parts: dict) -> None:
    parts["counts"] = parts["counts"].astype(np.int32)
    report = validate_anndata(build(parts, sparse=False), CONFIG)
    assert report.success, report.format_failures()


# --- the report -------------------------------------------------------------------------


def test_to_dict_is_json_with_every_expectation(parts: dict) -> None:
    parts["counts"][3, 3] = np.nan
    report = validate_anndata(build(parts), CONFIG)

    payload = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert payload["success"] is False
    assert payload["n_expectations"] == report.n_expectations == len(payload["expectations"])
    assert {e["table"] for e in payload["expectations"]} == {"cells", "genes", "samples", "classes"}
    for outcome in payload["expectations"]:
        assert set(outcome) >= {"table", "expectation", "column", "success", "kwargs"}
    nonfinite = [e for e in payload["expectations"] if e["column"] == "n_nonfinite"]
    assert nonfinite[0]["success"] is False
    assert nonfinite[0]["kwargs"]["max_value"] == 0
    assert payload["failures"][0]["examples"] == ["cell_3=1"]
    assert payload["statistics"]["n_nonfinite"] == 1


def test_empty_dataset_fails_without_crashing() -> None:
    adata = make_adata(np.zeros((0, 3)), samples=[], labels=[], genes=["A", "B", "C"])
    report = validate_anndata(adata, CONFIG)

    failure_for(report, "cells", None, "expect_table_row_count_to_be_between")
    json.dumps(report.to_dict(), allow_nan=False)


# --- Data Docs --------------------------------------------------------------------------


def test_data_docs_are_written_to_docs_dir(parts: dict, tmp_path: Path, monkeypatch) -> None:
    docs = tmp_path / "reports" / "data_docs"
    parts["counts"][0, 0] = -1
    report = validate_anndata(build(parts), CONFIG, docs_dir=docs)

    index = docs / "index.html"
    assert report.docs_index == index and index.is_file()
    # the written report says where the docs are relative to the project, and not how long it took:
    # reports/validation.json is hashed into dvc.lock, so it must read the same in every clone
    assert report.to_dict(relative_to=tmp_path)["docs_index"] == "reports/data_docs/index.html"
    monkeypatch.chdir(tmp_path)  # as a stage sees it: root "." and an absolute docs path
    assert report.to_dict(relative_to=Path("."))["docs_index"] == "reports/data_docs/index.html"
    assert report.to_dict()["docs_index"] == str(index)
    assert "elapsed_s" not in report.to_dict()
    pages = sorted(p.name for p in (docs / "validations").rglob("*.html"))
    assert len(pages) == 4, pages
    assert "oncopersistnet_cells" in index.read_text(encoding="utf-8")
    # nothing but the docs folder is left behind (no GX project, no build folders)
    assert [p.name for p in (tmp_path / "reports").iterdir()] == ["data_docs"]

    # a second run replaces the earlier build instead of piling up results
    validate_anndata(build(parts), CONFIG, docs_dir=docs)
    assert len(list((docs / "validations").rglob("*.html"))) == 4
    assert [p.name for p in (tmp_path / "reports").iterdir()] == ["data_docs"]


def test_data_docs_refuse_to_overwrite_an_unrelated_folder(parts: dict, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ConfigError, match="refusing"):
        validate_anndata(build(parts), CONFIG, docs_dir=tmp_path)
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine"
