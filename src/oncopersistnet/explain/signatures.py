"""Published persister gene sets, and how a model's top genes overlap them.

The sets ship with the package (``persister_signatures.csv``; sources and the
reasons for what is left out in this folder's README). An overlap only means
something next to what chance gives: with ``k`` top genes drawn from the ``U``
genes the model reads, of which ``s`` are in a signature, ``k * s / U`` land in
it by chance, and the hypergeometric tail says how surprising the observed
count is.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import pandas as pd
from scipy import stats

from oncopersistnet.errors import InputDataError

SIGNATURE_FILE = "persister_signatures.csv"
DIRECTIONS = ("up", "down", "required")


@dataclass(frozen=True)
class Signature:
    """One published gene set."""

    name: str
    source: str
    direction: dict[str, str]  # gene -> up | down | required

    @property
    def genes(self) -> list[str]:
        return sorted(self.direction)


def load_signatures(path: str | None = None) -> list[Signature]:
    """The shipped signatures (or those of another CSV with the same columns), in file order."""
    try:
        if path is None:
            with (
                resources.files("oncopersistnet.explain")
                .joinpath(SIGNATURE_FILE)
                .open("r", encoding="utf-8") as handle
            ):
                table = pd.read_csv(handle, dtype=str)
        else:
            table = pd.read_csv(path, dtype=str)
    except (OSError, ValueError) as exc:
        raise InputDataError(f"{path or SIGNATURE_FILE}: cannot read the signature table ({exc})") from exc
    missing = {"signature", "gene", "direction", "source"} - set(table.columns)
    if missing:
        raise InputDataError(f"{path or SIGNATURE_FILE}: missing columns {sorted(missing)}")
    bad = sorted(set(table["direction"]) - set(DIRECTIONS))
    if bad:
        raise InputDataError(f"{path or SIGNATURE_FILE}: direction must be one of {DIRECTIONS}, got {bad}")
    signatures = []
    for name, rows in table.groupby("signature", sort=False):
        signatures.append(
            Signature(
                str(name),
                str(rows["source"].iloc[0]),
                dict(zip(rows["gene"], rows["direction"], strict=True)),
            )
        )
    return signatures


def signature_overlap(
    signature: Signature, table: pd.DataFrame, top: dict[str, list[str]], *, k: int
) -> dict[str, Any]:
    """Overlap of the global top-``k`` genes with ``signature``, against chance, with direction checks.

    ``table``: the per-gene table (its index is the universe: the genes the model
    reads). A gene the model does not read cannot be found, so it counts
    neither in the overlap nor in the chance rate (``genes_not_read`` lists them).
    For overlapping ``up``/``down`` genes, ``direction_agrees`` says whether the
    model reads them the published way round (sign of ``mean_path_gradient``).
    """
    universe = set(table.index)
    readable = [g for g in signature.genes if g in universe]
    chosen = top["global"][:k]
    overlap = [g for g in chosen if g in signature.direction]
    n_universe, n_top = len(universe), len(chosen)
    chance_rate = len(readable) / n_universe if n_universe else 0.0
    agrees = {}
    for gene in overlap:
        direction = signature.direction[gene]
        if direction in ("up", "down"):
            gradient = float(table.loc[gene, "mean_path_gradient"])
            agrees[gene] = bool(gradient > 0) if direction == "up" else bool(gradient < 0)
    return {
        "source": signature.source,
        "signature_genes": len(signature.genes),
        "genes_read_by_model": len(readable),
        "genes_not_read": [g for g in signature.genes if g not in universe],
        "overlap": len(overlap),
        "overlap_genes": overlap,
        "chance_rate": chance_rate,
        "expected_overlap": n_top * chance_rate,
        # P(X >= overlap), X ~ Hypergeom(universe, readable signature genes, top-k draws)
        "p_value": float(stats.hypergeom.sf(len(overlap) - 1, n_universe, len(readable), n_top))
        if n_universe
        else 1.0,
        "in_persister_top": [g for g in top["persister"][:k] if g in signature.direction],
        "in_non_persister_top": [g for g in top["non_persister"][:k] if g in signature.direction],
        "direction_agrees": agrees,
    }


def signature_overlaps(
    table: pd.DataFrame, top: dict[str, list[str]], k: int, *, signatures: list[Signature] | None = None
) -> dict[str, dict[str, Any]]:
    """:func:`signature_overlap` for every shipped signature, keyed by signature name."""
    return {
        s.name: signature_overlap(s, table, top, k=k)
        for s in (signatures if signatures is not None else load_signatures())
    }
