"""Great Expectations suite for an AnnData of raw scRNA-seq counts.

The suite runs GX 1.x for real -- ephemeral context, a pandas data source with one
dataframe asset per table, one ExpectationSuite per table built from a list, and
``ValidationDefinition.run(batch_parameters={"dataframe": df})`` -- but on the
summary tables from :mod:`oncopersistnet.validation.summaries`, never on the
cells x genes matrix: GX checks one column at a time and 2,000 gene columns x
5,000 cells took 629 s, whereas the four summary tables validate in well under a
second and still let a failure name the offending cells.

Why each table exists:

* ``cells`` -- per-cell counts of non-finite, negative and fractional entries
  (the model and the scRNA-seq normalisation assume raw integer UMI counts),
  library size and detected genes (empty droplets), metadata completeness.
* ``genes`` -- gene names must be unique and non-empty, or columns would be
  silently mixed up when a model trained on one gene order meets another.
* ``samples`` -- a sample with a handful of cells is a failed library, not data.
* ``classes`` -- both labels must exist, each in at least
  ``min_samples_per_class`` samples, because train/validation/test are split by
  sample and every split needs both classes.

The result format asks GX for ``unexpected_index_column_names`` so that each
failure comes back with the ids of offending rows (``cell_12=2``), not just row
positions. Optional Data Docs are rendered by the same ephemeral context into a
filesystem site: no GX project folder is created anywhere.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oncopersistnet.config import ValidateConfig
from oncopersistnet.data.labels import NON_PERSISTER, PERSISTER
from oncopersistnet.errors import ConfigError, DataValidationError
from oncopersistnet.validation.summaries import Summaries, summarise

logger = logging.getLogger(__name__)

#: How many offending rows/values a failure quotes.
MAX_EXAMPLES = 5

#: Column that identifies a row of each table; GX returns it for offending rows.
ID_COLUMNS: dict[str, str] = {
    "cells": "cell_id",
    "genes": "gene",
    "samples": "sample",
    "classes": "label",
}

_SUITE_PREFIX = "oncopersistnet"
_DOCS_SITE = "oncopersistnet_validation"


@dataclass(frozen=True)
class ValidationFailure:
    """One failed expectation, with enough detail to find the bad rows.

    ``n_unexpected``/``n_rows`` are ``None`` for table-level expectations (row
    count, distinct values), whose ``examples`` quote the observed value instead.
    """

    table: str
    expectation: str
    column: str | None
    n_unexpected: int | None
    n_rows: int | None
    examples: list[str]
    expected: str = ""

    def message(self) -> str:
        """One readable line: where, what was expected, how many rows failed, examples."""
        where = f"{self.table}.{self.column}" if self.column else self.table
        text = f"{where}: {self.expectation}"
        if self.expected:
            text += f" (expected {self.expected})"
        if self.n_unexpected is not None and self.n_rows is not None:
            text += f" failed for {self.n_unexpected} of {self.n_rows} rows"
        else:
            text += " failed"
        if self.examples:
            text += ", e.g. " + ", ".join(self.examples)
        return text


@dataclass(frozen=True)
class ExpectationOutcome:
    """The outcome of one expectation, pass or fail (what ``to_dict`` lists)."""

    table: str
    expectation: str
    column: str | None
    success: bool
    kwargs: dict[str, Any]
    expected: str


@dataclass
class ValidationReport:
    """Verdict of :func:`validate_anndata` on one dataset.

    ``statistics`` holds dataset-level numbers (cells, genes, samples, cells per
    class, zero fraction of the matrix, totals of bad entries) so the report is
    useful even when everything passes.
    """

    success: bool
    failures: list[ValidationFailure]
    n_expectations: int
    statistics: dict[str, Any]
    outcomes: list[ExpectationOutcome] = field(default_factory=list)
    docs_index: Path | None = None
    elapsed_s: float = 0.0

    def to_dict(self, *, relative_to: Path | None = None) -> dict[str, Any]:
        """JSON-serialisable form: verdict, statistics, failures and every expectation.

        ``docs_index`` is written relative to ``relative_to`` when given, and the run time is left
        out (it is logged): the pipeline's report is hashed into ``dvc.lock``, so it must not say
        where the clone lives or how busy the machine was.
        """
        docs = self.docs_index
        if docs is not None and relative_to is not None:
            root = relative_to.resolve()  # the stage's root is ".", the docs path absolute
            docs = docs.resolve().relative_to(root) if docs.resolve().is_relative_to(root) else docs
        return _jsonable(
            {
                "success": self.success,
                "n_expectations": self.n_expectations,
                "n_failed": len(self.failures),
                "statistics": self.statistics,
                "failures": [asdict(f) | {"message": f.message()} for f in self.failures],
                "expectations": [asdict(o) for o in self.outcomes],
                "docs_index": str(docs) if docs else None,
            }
        )

    def format_failures(self) -> str:
        """A multi-line list of failed expectations, one per line, for logs and errors."""
        if self.success:
            return f"All {self.n_expectations} data expectations passed."
        lines = [
            f"Data validation failed: {len(self.failures)} of {self.n_expectations} expectations not met"
        ]
        lines += [f"  - {failure.message()}" for failure in self.failures]
        return "\n".join(lines)

    def raise_for_failures(self) -> None:
        """Raise :class:`DataValidationError` listing the failures if any expectation failed."""
        if not self.success:
            raise DataValidationError(self.format_failures())


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars, paths, tuples and non-finite floats into plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def build_expectations(config: ValidateConfig) -> dict[str, list[Any]]:
    """The expectations of each table, built as lists (``add_expectation`` is quadratic)."""
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    labels = [PERSISTER, NON_PERSISTER]
    raw = "raw UMI counts are finite non-negative integers"
    return {
        "cells": [
            gxe.ExpectTableRowCountToBeBetween(min_value=1, notes="an empty dataset cannot be trained on"),
            gxe.ExpectColumnValuesToNotBeNull(column="cell_id"),
            gxe.ExpectColumnValuesToBeUnique(column="cell_id", notes="cell ids key predictions and splits"),
            gxe.ExpectColumnValuesToBeBetween(column="n_nonfinite", min_value=0, max_value=0, notes=raw),
            gxe.ExpectColumnValuesToBeBetween(column="n_negative", min_value=0, max_value=0, notes=raw),
            gxe.ExpectColumnValuesToBeBetween(
                column="n_noninteger",
                min_value=0,
                max_value=0,
                notes=raw + "; normalised or log data would be normalised twice",
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column="n_genes_detected",
                min_value=config.min_genes_per_cell,
                notes="cells with few detected genes are empty droplets or dead cells",
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column="total_counts",
                min_value=config.min_counts_per_cell,
                notes="library size below the minimum: too little signal per cell",
            ),
            gxe.ExpectColumnValuesToNotBeNull(column="label"),
            gxe.ExpectColumnValuesToBeInSet(
                column="label",
                value_set=labels,
                notes="labels must be mapped to the canonical persister / non-persister",
            ),
            gxe.ExpectColumnValuesToNotBeNull(
                column="sample", notes="the split is grouped by sample; every cell needs one"
            ),
        ],
        "genes": [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToNotBeNull(column="gene"),
            gxe.ExpectColumnValuesToBeUnique(
                column="gene", notes="duplicate gene names make the model's gene order ambiguous"
            ),
            gxe.ExpectColumnValuesToNotMatchRegex(
                column="gene", regex=r"^\s*$", notes="gene names must not be empty"
            ),
        ],
        "samples": [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToBeBetween(
                column="n_cells",
                min_value=config.min_cells_per_sample,
                notes="a sample with very few cells is a failed library",
            ),
        ],
        "classes": [
            gxe.ExpectColumnDistinctValuesToContainSet(
                column="label", value_set=labels, notes="a classifier needs both classes"
            ),
            # Only the canonical classes: an unknown label is already reported by the
            # cell table, and a second failure for it would only add noise.
            gxe.ExpectColumnValuesToBeBetween(
                column="n_samples",
                min_value=config.min_samples_per_class,
                row_condition=Column("label").is_in(labels),
                notes="train/validation/test are split by sample; each needs every class",
            ),
        ],
    }


def _fmt(value: Any) -> str:
    """Short text for a number or value: ``2.0`` -> ``2``, strings unquoted."""
    if isinstance(value, str):
        try:  # GX returns offending values of numeric columns as strings
            return _fmt(float(value))
        except ValueError:
            return value
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else f"{float(value):.6g}"
    if isinstance(value, (list, tuple, set)):
        return "{" + ", ".join(_fmt(v) for v in value) + "}"
    return str(value)


def _describe(expectation: str, kwargs: dict[str, Any]) -> str:
    """What the expectation asks for, in words (used in failure messages)."""
    if expectation.endswith("_to_be_between"):
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        prefix = "row count " if expectation.startswith("expect_table_row_count") else ""
        if low is not None and high is not None:
            if low == high:
                return f"{prefix}== {_fmt(low)}"
            return f"{prefix}between {_fmt(low)} and {_fmt(high)}"
        if low is not None:
            return f"{prefix}>= {_fmt(low)}"
        if high is not None:
            return f"{prefix}<= {_fmt(high)}"
    if expectation == "expect_column_values_to_be_in_set":
        return f"values in {_fmt(kwargs.get('value_set', []))}"
    if expectation == "expect_column_distinct_values_to_contain_set":
        return f"distinct values to include {_fmt(kwargs.get('value_set', []))}"
    if expectation == "expect_column_values_to_be_unique":
        return "unique values"
    if expectation == "expect_column_values_to_not_be_null":
        return "no missing values"
    if expectation == "expect_column_values_to_not_match_regex":
        return f"no value matching {kwargs.get('regex')!r}"
    shown = {k: v for k, v in kwargs.items() if k not in ("batch_id", "column")}
    return ", ".join(f"{k}={_fmt(v)}" for k, v in shown.items())


def _exception_message(exception_info: Any) -> str | None:
    """The message of an exception GX caught while evaluating an expectation, if any."""
    if not isinstance(exception_info, dict):
        return None
    if exception_info.get("raised_exception"):
        return str(exception_info.get("exception_message"))
    for info in exception_info.values():  # keyed by metric id in some code paths
        if isinstance(info, dict) and info.get("raised_exception"):
            return str(info.get("exception_message"))
    return None


def _examples(result: dict[str, Any], column: str | None, id_column: str) -> list[str]:
    """Quote a few offending rows as ``id=value`` (or the observed/missing values)."""
    indexed = result.get("partial_unexpected_index_list") or []
    if indexed and isinstance(indexed[0], dict):
        out = []
        for row in indexed:
            ident = row.get(id_column)
            value = row.get(column) if column else None
            if column == id_column or value is None:
                out.append(str(ident if ident is not None else value))
            else:
                out.append(f"{ident}={_fmt(value)}")
        # a duplicated id is listed once per copy by the uniqueness check
        return list(dict.fromkeys(out))[:MAX_EXAMPLES]
    if result.get("partial_unexpected_list"):
        return [_fmt(v) for v in result["partial_unexpected_list"][:MAX_EXAMPLES]]
    if result.get("partial_missing_list"):
        return [f"missing {_fmt(v)}" for v in result["partial_missing_list"][:MAX_EXAMPLES]]
    if result.get("observed_value") is not None:
        return [f"observed {_fmt(result['observed_value'])}"]
    return []


def _collect(
    table: str, validation_result: Any, n_rows: int
) -> tuple[list[ExpectationOutcome], list[ValidationFailure]]:
    """Turn one suite's GX result into outcomes and failures."""
    outcomes: list[ExpectationOutcome] = []
    failures: list[ValidationFailure] = []
    for item in validation_result.results:
        expectation = item.expectation_config.type
        kwargs = {k: v for k, v in item.expectation_config.kwargs.items() if k != "batch_id"}
        column = kwargs.get("column")
        expected = _describe(expectation, kwargs)
        success = bool(item.success)
        outcomes.append(ExpectationOutcome(table, expectation, column, success, _jsonable(kwargs), expected))
        if success:
            continue
        result = dict(item.result or {})
        error = _exception_message(item.exception_info)
        if error is not None:
            logger.warning("GX could not evaluate %s on %s: %s", expectation, table, error)
            examples = [f"error: {error}"]
        else:
            examples = _examples(result, column, ID_COLUMNS[table])
        n_unexpected = result.get("unexpected_count")
        failures.append(
            ValidationFailure(
                table=table,
                expectation=expectation,
                column=column,
                n_unexpected=None if n_unexpected is None else int(n_unexpected),
                n_rows=None if n_unexpected is None else int(result.get("element_count", n_rows)),
                examples=examples,
                expected=expected,
            )
        )
    return outcomes, failures


def _gx_context(docs_build_dir: Path | None) -> Any:
    """An ephemeral, quiet GX context; with a filesystem Data Docs site when asked.

    In-memory stores mean nothing is written anywhere except the docs site;
    progress bars are off (they would spam DVC logs) and analytics are off.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    sites: dict[str, Any] = {}
    if docs_build_dir is not None:
        sites[_DOCS_SITE] = {
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_build_dir),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites=sites,
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _check_docs_dir(docs_dir: Path) -> None:
    """Refuse to replace a folder that is not a previous Data Docs build."""
    if not docs_dir.exists():
        return
    if not docs_dir.is_dir():
        raise ConfigError(f"{docs_dir}: exists and is not a folder; cannot write Data Docs there")
    if any(docs_dir.iterdir()) and not (docs_dir / "index.html").is_file():
        raise ConfigError(
            f"{docs_dir}: folder is not empty and holds no Data Docs index.html; refusing to replace it"
        )


def _publish_docs(build_dir: Path, docs_dir: Path) -> None:
    """Move a finished docs build onto ``docs_dir``, replacing an older build.

    The build happens in a hidden sibling folder so a crash never leaves a
    half-written site, and both renames stay on one file system.
    """
    if docs_dir.exists():
        old = docs_dir.with_name(f".{docs_dir.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(docs_dir, old)
        os.replace(build_dir, docs_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(build_dir, docs_dir)


def _run_suites(
    summaries: Summaries, config: ValidateConfig, docs_build_dir: Path | None
) -> tuple[list[ExpectationOutcome], list[ValidationFailure]]:
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    context = _gx_context(docs_build_dir)
    # One run id for the four suites, so Data Docs lists them as one run.
    run_id = RunIdentifier(run_name=f"{_SUITE_PREFIX}-validate", run_time=datetime.datetime.now(datetime.UTC))
    source = context.data_sources.add_pandas(name=f"{_SUITE_PREFIX}_tables")
    expectations = build_expectations(config)
    outcomes: list[ExpectationOutcome] = []
    failures: list[ValidationFailure] = []
    for table, frame in summaries.tables().items():
        asset = source.add_dataframe_asset(name=table)
        batch = asset.add_batch_definition_whole_dataframe(name=f"{table}_whole")
        suite = context.suites.add(
            gx.ExpectationSuite(name=f"{_SUITE_PREFIX}_{table}", expectations=expectations[table])
        )
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{_SUITE_PREFIX}_{table}", data=batch, suite=suite)
        )
        result = definition.run(
            batch_parameters={"dataframe": frame},
            run_id=run_id,
            result_format={
                "result_format": "SUMMARY",
                "unexpected_index_column_names": [ID_COLUMNS[table]],
                "partial_unexpected_count": MAX_EXAMPLES,
            },
        )
        table_outcomes, table_failures = _collect(table, result, len(frame))
        outcomes += table_outcomes
        failures += table_failures
    if docs_build_dir is not None:
        context.build_data_docs(site_names=[_DOCS_SITE])
    return outcomes, failures


def validate_anndata(adata: Any, config: ValidateConfig, docs_dir: Path | None = None) -> ValidationReport:
    """Validate raw counts and metadata of ``adata`` with Great Expectations.

    Builds the summary tables (never validating the matrix column by column),
    runs one suite per table and returns a :class:`ValidationReport`; it does not
    raise on failed expectations -- call :meth:`ValidationReport.raise_for_failures`
    for that. With ``docs_dir`` the GX Data Docs HTML site is written there
    (``docs_dir/index.html``), replacing an earlier build in that folder.
    """
    started = time.perf_counter()
    docs_dir = Path(docs_dir).resolve() if docs_dir is not None else None  # GX needs absolute paths
    if docs_dir is not None:
        _check_docs_dir(docs_dir)
    summaries = summarise(adata)
    logger.debug(
        "summaries of %d cells x %d genes in %.2fs",
        summaries.statistics["n_cells"],
        summaries.statistics["n_genes"],
        time.perf_counter() - started,
    )
    build_dir: Path | None = None
    if docs_dir is not None:
        docs_dir.parent.mkdir(parents=True, exist_ok=True)
        build_dir = Path(tempfile.mkdtemp(prefix=f".{docs_dir.name}.build-", dir=docs_dir.parent))
    try:
        outcomes, failures = _run_suites(summaries, config, build_dir)
        if build_dir is not None and docs_dir is not None:
            if not (build_dir / "index.html").is_file():
                raise RuntimeError(f"GX Data Docs build wrote no index.html into {build_dir}")
            _publish_docs(build_dir, docs_dir)
            build_dir = None
    finally:
        if build_dir is not None:
            shutil.rmtree(build_dir, ignore_errors=True)
    statistics = dict(summaries.statistics)
    statistics["n_rows_per_table"] = {name: len(t) for name, t in summaries.tables().items()}
    report = ValidationReport(
        success=not failures,
        failures=failures,
        n_expectations=len(outcomes),
        statistics=statistics,
        outcomes=outcomes,
        docs_index=(docs_dir / "index.html") if docs_dir is not None else None,
        elapsed_s=time.perf_counter() - started,
    )
    logger.info(
        "validated %d cells x %d genes: %d of %d expectations passed (%.2fs)%s",
        statistics["n_cells"],
        statistics["n_genes"],
        len(outcomes) - len(failures),
        len(outcomes),
        report.elapsed_s,
        f"; Data Docs at {report.docs_index}" if report.docs_index else "",
    )
    return report
