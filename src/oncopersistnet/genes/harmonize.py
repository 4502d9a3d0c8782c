"""Harmonise gene names to GENCODE v44 symbols, offline.

Users' matrices name genes by symbol (any case: ``tp53``, ``TP53``) or by Ensembl
ID with or without a version suffix (``ENSG00000141510.17``). A model trained
on one namespace silently sees nothing but imputed values in the other, so
every input (training data at ``ingest``, new cells at ``predict``) is mapped to
one namespace first: gene symbols as GENCODE v44 spells them, from the table
vendored beside this module (provenance in README.md there).

Rules, in order:

* an Ensembl gene ID (version suffix stripped) known to the table becomes its symbol;
* a symbol known to the table, compared case-insensitively, takes the table's spelling;
* anything else is kept as given (a custom or newer gene name still matches itself);
* names that end up equal are duplicates: their counts are **summed** (two IDs or
  two rows for one gene are the same molecules counted in two places; dropping
  one would lose them). The report says how many were merged;
* symbols mostly in Title case (``Actb``, ``Tp53``) are mouse-style: they are kept
  as given, not upper-cased into human symbols, so a mouse matrix does not pass
  silently for a human one; the report's namespace says ``symbol (mouse-style case)``.

Symbol aliases (previous HGNC symbols such as ``C10orf54`` for ``VSIR``) are not
mapped: the vendored table has none.
"""

from __future__ import annotations

import gzip
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

logger = logging.getLogger(__name__)

TABLE_FILE = "gencode_v44_human_id2name.csv.gz"
ENSEMBL_ID = re.compile(r"^ENS[A-Z]*G\d{11}(\.\d+)?$", re.IGNORECASE)


@dataclass(frozen=True)
class GeneTable:
    """Ensembl ID -> symbol, and upper-cased symbol -> canonical symbol."""

    id_to_symbol: dict[str, str]
    canonical_symbol: dict[str, str]

    @property
    def symbols(self) -> list[str]:
        """Every distinct symbol in the table, in table order."""
        return list(dict.fromkeys(self.id_to_symbol.values()))


@lru_cache(maxsize=1)
def load_gene_table() -> GeneTable:
    """Read the vendored GENCODE table once per process."""
    with (
        resources.files("oncopersistnet.genes").joinpath(TABLE_FILE).open("rb") as raw,
        gzip.open(raw, "rt") as handle,
    ):
        pairs = [line.rstrip("\n").split(",", 1) for line in handle if line.strip()]
    id_to_symbol = {gene_id.split(".")[0].upper(): symbol for gene_id, symbol in pairs}
    canonical: dict[str, str] = {}
    for symbol in id_to_symbol.values():
        canonical.setdefault(symbol.upper(), symbol)
    return GeneTable(id_to_symbol=id_to_symbol, canonical_symbol=canonical)


@dataclass(frozen=True)
class HarmonizationReport:
    """What mapping did to a list of gene names."""

    namespace: str  # "ensembl", "symbol" or "mixed"
    n_input: int
    n_ensembl_mapped: int
    n_symbol_recognised: int
    n_unrecognised: int
    n_output: int
    unrecognised_examples: list[str] = field(default_factory=list)

    @property
    def n_merged(self) -> int:
        """Input names folded into another by the duplicate rule."""
        return self.n_input - self.n_output

    def describe(self) -> str:
        """One line for logs."""
        return (
            f"{self.n_input:,} genes named by {self.namespace}: "
            f"{self.n_ensembl_mapped:,} Ensembl IDs mapped to symbols, "
            f"{self.n_symbol_recognised:,} symbols recognised, {self.n_unrecognised:,} kept as given"
            + (f" (e.g. {', '.join(self.unrecognised_examples)})" if self.unrecognised_examples else "")
            + (f"; {self.n_merged:,} duplicates summed into {self.n_output:,} genes" if self.n_merged else "")
        )


def detect_namespace(names: Sequence[str]) -> str:
    """ "ensembl" when most names are Ensembl gene IDs, "symbol" when few are, else "mixed"."""
    if not len(names):
        return "symbol"
    fraction = sum(bool(ENSEMBL_ID.match(str(n))) for n in names) / len(names)
    return "ensembl" if fraction >= 0.9 else "symbol" if fraction <= 0.1 else "mixed"


_TITLE_CASE = re.compile(r"^[A-Z][a-z0-9][a-z0-9-]*$")


def looks_mouse_style(names: Sequence[str]) -> bool:
    """True when most symbol-like names are Title case (``Actb``), the mouse convention."""
    symbols = [str(n) for n in names if not ENSEMBL_ID.match(str(n)) and any(c.isalpha() for c in str(n))]
    return bool(symbols) and sum(bool(_TITLE_CASE.match(n)) for n in symbols) / len(symbols) >= 0.5


def harmonize_names(names: Sequence[str]) -> tuple[np.ndarray, HarmonizationReport]:
    """Map each name to the project namespace (same length; duplicates are left for the caller to merge)."""
    table = load_gene_table()
    mouse_style = looks_mouse_style(names)
    out, ensembl_mapped, recognised, unknown = [], 0, 0, []
    for name in map(str, names):
        if ENSEMBL_ID.match(name):
            symbol = table.id_to_symbol.get(name.split(".")[0].upper())
            if symbol is not None:
                out.append(symbol)
                ensembl_mapped += 1
                continue
            out.append(name.split(".")[0].upper())
            unknown.append(name)
            continue
        canonical = None if mouse_style else table.canonical_symbol.get(name.upper())
        if canonical is not None:
            out.append(canonical)
            recognised += 1
        else:
            out.append(name)
            unknown.append(name)
    mapped = np.asarray(out, dtype=object).astype(str)
    report = HarmonizationReport(
        namespace="symbol (mouse-style case)" if mouse_style else detect_namespace(names),
        n_input=len(out),
        n_ensembl_mapped=ensembl_mapped,
        n_symbol_recognised=recognised,
        n_unrecognised=len(unknown),
        n_output=len(set(out)),
        unrecognised_examples=unknown[:5],
    )
    return mapped, report


def merge_matrix(names: np.ndarray) -> tuple[np.ndarray, sparse.csr_matrix]:
    """Unique names (first-seen order) and the 0/1 matrix that sums duplicate columns.

    ``X @ merge`` turns cells x len(names) into cells x len(unique) and keeps a
    sparse X sparse.
    """
    unique, first, inverse = np.unique(names, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # keep the input's gene order
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    columns = rank[inverse]
    merge = sparse.csr_matrix(
        (np.ones(len(names), dtype=np.float32), (np.arange(len(names)), columns)),
        shape=(len(names), unique.size),
    )
    return unique[order], merge


def harmonize_adata(adata: ad.AnnData) -> tuple[ad.AnnData, HarmonizationReport]:
    """A copy of ``adata`` with harmonised gene names and duplicate genes summed.

    The original names are kept in ``var['input_names']`` (joined with ``;`` when
    several were merged).
    """
    mapped, report = harmonize_names(adata.var_names)
    unique, merge = merge_matrix(mapped)
    X = adata.X
    if report.n_merged:
        summed = sparse.csr_matrix(X) @ merge if sparse.issparse(X) else merge.T.dot(np.asarray(X).T).T
        X = sparse.csr_matrix(summed) if sparse.issparse(X) else summed
        if np.issubdtype(adata.X.dtype, np.integer):
            X = X.astype(adata.X.dtype)
    originals = pd.Series(np.asarray(adata.var_names, dtype=str)).groupby(mapped, sort=False).agg(";".join)
    out = ad.AnnData(
        X=X,
        obs=adata.obs.copy(),
        var=pd.DataFrame({"input_names": originals.reindex(unique).to_numpy()}, index=unique),
        uns=dict(adata.uns),
    )
    logger.info("gene names: %s", report.describe())
    return out, report
