"""No call without signal: the per-cell figures that say whether a cell can be scored at all.

The graph imputes a missing gene with its training mean and normalises each cell by
its own total, so an all-zero cell, a cell with a handful of counts or one whose counts
all fall on genes the model does not know still comes out with a confident-looking
probability: it is the imputed average cell, not the cell. Three figures per cell,
taken on the aligned block (cells x model genes, NaN where the input lacks a gene),
catch that: total counts over the model's genes, detected model genes and detected
selected genes (the ones the network reads). A cell below any floor is labelled
``no_call`` with a reason and no probability. Missing genes (NaN) are neither detected
nor counted. The floors are ``predict.*`` in params.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oncopersistnet.config import PredictConfig

NO_CALL = "no_call"


@dataclass(frozen=True, kw_only=True)
class SignalFloors:
    """The least signal a cell needs to be called (``predict.min_counts`` and the two below)."""

    min_counts: float
    min_detected_genes: int
    min_detected_selected_genes: int

    @classmethod
    def from_params(
        cls,
        predict: PredictConfig,
        *,
        min_counts: float | None = None,
        min_detected_genes: int | None = None,
        min_detected_selected_genes: int | None = None,
    ) -> SignalFloors:
        """``predict.*`` of params.yaml, each replaced by the value given (a CLI option, an argument)."""

        def pick(given: float | None, key: str) -> float:
            return getattr(predict, key) if given is None else given

        return cls(
            min_counts=pick(min_counts, "min_counts"),
            min_detected_genes=pick(min_detected_genes, "min_detected_genes"),
            min_detected_selected_genes=pick(min_detected_selected_genes, "min_detected_selected_genes"),
        )


@dataclass(frozen=True)
class CellSignal:
    """Per cell: total counts over model genes, detected model genes, detected selected genes."""

    counts: np.ndarray
    detected: np.ndarray
    detected_selected: np.ndarray


def cell_signal(aligned: np.ndarray, selected_mask: np.ndarray) -> CellSignal:
    """The three figures of every row of ``aligned`` (``selected_mask``: per model gene, is it read?)."""
    detected = aligned > 0  # NaN (a gene the input lacks) compares False: not detected
    counts = np.where(detected, aligned, 0.0).sum(axis=1, dtype=np.float64)
    return CellSignal(
        counts=counts,
        detected=detected.sum(axis=1),
        detected_selected=detected[:, selected_mask].sum(axis=1),
    )


def no_call_reasons(signal: CellSignal, floors: SignalFloors) -> np.ndarray:
    """Per cell, why it gets no call (reasons joined with ``"; "``), or ``""`` when it has signal."""
    checks = (
        (signal.counts, floors.min_counts, "counts over model genes", "predict.min_counts"),
        (signal.detected, floors.min_detected_genes, "detected model genes", "predict.min_detected_genes"),
        (
            signal.detected_selected,
            floors.min_detected_selected_genes,
            "detected selected genes",
            "predict.min_detected_selected_genes",
        ),
    )
    reasons = np.full(signal.counts.shape[0], "", dtype=object)
    for values, floor, what, key in checks:
        for i in np.flatnonzero(values < floor):
            reason = f"{values[i]:g} {what} < {key} {floor:g}"
            reasons[i] = f"{reasons[i]}; {reason}" if reasons[i] else reason
    return reasons.astype(str)


#: Low percentiles of the training cells' figures reported beside the floors.
TAIL_PERCENTILES = (0.1, 1.0)


def signal_tail(signal: CellSignal) -> dict[str, dict[str, float]]:
    """Per figure, the least value and the low percentiles: where the floors sit against real cells.

    The preprocess stage runs this on the training cells, so the README's account of
    why the floors are safe (no cell training accepts is refused a call) is measured.
    """
    figures = {
        "counts": signal.counts,
        "detected_genes": signal.detected,
        "detected_selected_genes": signal.detected_selected,
    }
    return {
        name: {"min": float(values.min())}
        | {f"p{p:g}": float(np.percentile(values, p)) for p in TAIL_PERCENTILES}
        for name, values in figures.items()
    }
