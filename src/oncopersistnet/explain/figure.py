"""The figure a reader looks at first: which genes the model reads, and which way.

One panel, one shared logit axis, the signed ranking of
:func:`~oncopersistnet.explain.aggregate.signed_table` drawn as it is printed
(in the README and by ``oncopersistnet explain``): the top genes by
|signed attribution|, strongest on top, a bar to the right (red) when higher
expression pushes a cell towards persister and to the left (blue) when it
pushes towards non-persister.

Why not the per-class butterfly this figure used to be (top genes of persister
cells beside top genes of non-persister cells, against an average cell): the
same up-regulated genes (VIM, CDKN1A) headed both halves, because a gene up in
persisters sits below the average in non-persister cells, and genes the model
reads as "less of it means persister" (the planted down-regulated proliferation
genes) appeared in neither. The class-contrastive, signed ranking shows each
gene once, on the side the model reads it.

Planted genes (simulated data) and published signature genes are marked on the
labels, so a reader can see at a glance whether the model leans on the
programme, down genes included, or on something else.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from oncopersistnet.atomic import atomic_path

PERSISTER_COLOUR = "#c0392b"
NON_PERSISTER_COLOUR = "#2e6da4"
PLANTED_MARK = "\u2605"  # black star
SIGNATURE_MARK = "\u2020"  # dagger

#: Shown instead of bars when the explained cells hold one class only (nothing to contrast).
NO_CONTRAST = "the explained cells hold one class only:\nno class-contrastive attribution, no signed ranking"


def _label(gene: str, planted: Collection[str] | None, signature_genes: Collection[str]) -> str:
    marks = (PLANTED_MARK if planted is not None and gene in planted else "") + (
        SIGNATURE_MARK if gene in signature_genes else ""
    )
    return f"{gene} {marks}" if marks else gene


def figure_genes(table: pd.DataFrame, n_genes: int) -> pd.Series:
    """The genes the figure draws, top to bottom, with their signed attribution.

    The head of the signed ranking (``signed_rank`` 1 first), so the figure
    shows exactly the genes the README and the CLI list, in the same order.
    Empty when ``table`` has no signed columns (one class only).
    """
    if "signed_rank" not in table.columns:
        return pd.Series(dtype=float, name="signed_attribution")
    head = table.sort_values("signed_rank", kind="stable").head(n_genes)
    return head["signed_attribution"].astype(float)


def signed_attribution_figure(
    table: pd.DataFrame,
    *,
    n_genes: int = 20,
    planted: Collection[str] | None = None,
    signature_genes: Collection[str] = (),
    title: str = "",
) -> Figure:
    """The signed ranking's top ``n_genes`` as one diverging bar chart on a shared axis.

    ``table``: the per-gene table with :data:`~oncopersistnet.explain.aggregate.SIGNED_COLUMNS`
    (``Explanation.table``). One axis for both directions, because the
    class-contrastive attributions of the two sides are on the same footing
    (each class from the other's mean cell), unlike the old per-class panels
    whose non-persister side sat near the baseline and needed its own scale.
    ``planted``: genes the simulator planted (``None`` on real data: no marker,
    no lighter bars); ``signature_genes``: genes of the shipped signatures.
    Returned, not written, so a test can read the bars back.
    """
    values = figure_genes(table, n_genes)
    height = max(3.4, 0.3 * max(len(values), 1) + 2.3)
    fig = Figure(figsize=(8.5, height))
    FigureCanvasAgg(fig)  # its own Agg canvas: no global backend, nothing registered with pyplot
    ax = fig.subplots()
    if values.empty:
        ax.text(0.5, 0.5, NO_CONTRAST, transform=ax.transAxes, ha="center", va="center", fontsize=10)
        ax.set_axis_off()
    else:
        _draw_bars(ax, values, planted=planted, signature_genes=signature_genes)
    handles = _legend_handles(planted, signature_genes)
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=2,
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 0.0),
    )
    fig.suptitle(
        (title or f"Top {n_genes} genes of the signed ranking")
        + "\nclass-contrastive integrated gradients of the calibrated persister logit "
        "(each class from the other class's mean cell)",
        fontsize=9.5,
    )
    legend_rows = -(-len(handles) // 2)
    fig.tight_layout(rect=(0, (0.2 * legend_rows + 0.1) / height, 1, 1))
    return fig


def plot_attributions(
    table: pd.DataFrame,
    path: Path,
    *,
    n_genes: int = 20,
    planted: Collection[str] | None = None,
    signature_genes: Collection[str] = (),
    title: str = "",
) -> Path:
    """Write :func:`signed_attribution_figure` to ``path`` (PNG, atomically); return ``path``."""
    fig = signed_attribution_figure(
        table, n_genes=n_genes, planted=planted, signature_genes=signature_genes, title=title
    )
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    return path


def _draw_bars(
    ax: Axes,
    values: pd.Series,
    *,
    planted: Collection[str] | None,
    signature_genes: Collection[str],
) -> None:
    """One bar per gene, strongest on top; each gene's name on the empty side of zero, beside its bar.

    Names sit across the zero line from their bar (a persister gene's name left
    of zero, a non-persister gene's right of it), so a name is never far from
    its bar and never covered by another.
    """
    y = np.arange(len(values))[::-1]  # signed rank 1 on top
    extent = float(np.abs(values.to_numpy()).max()) * 1.1 or 1.0
    pad = 0.015 * extent
    for yi, (gene, value) in zip(y, values.items(), strict=True):
        colour = PERSISTER_COLOUR if value > 0 else NON_PERSISTER_COLOUR
        alpha = 1.0 if planted is None or gene in planted else 0.4
        ax.barh(yi, value, color=colour, alpha=alpha, height=0.72, label=str(gene))
        ax.text(
            -pad if value > 0 else pad,
            yi,
            _label(str(gene), planted, signature_genes),
            ha="right" if value > 0 else "left",
            va="center",
            fontsize=8.5,
        )
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-0.6, len(values) - 0.4)
    ax.set_yticks([])
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.grid(axis="x", alpha=0.3)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_xlabel(
        "mean |attribution| signed by the model's reading, logit units\n"
        "\u2190 higher expression pushes towards non-persister    "
        "higher expression pushes towards persister \u2192",
        fontsize=8.5,
    )


def _legend_handles(planted: Collection[str] | None, signature_genes: Collection[str]) -> list[Patch]:
    """The two directions, then the planted and signature marks where the figure uses them."""
    handles = [
        Patch(color=NON_PERSISTER_COLOUR, label="higher expression \u2192 non-persister"),
        Patch(color=PERSISTER_COLOUR, label="higher expression \u2192 persister"),
    ]
    if planted is not None:
        handles.append(
            Patch(
                color="grey",
                alpha=0.4,
                label=f"lighter: not planted  ({PLANTED_MARK} planted by the simulator)",
            )
        )
    if signature_genes:
        handles.append(Patch(color="white", label=f"{SIGNATURE_MARK} in a published persister signature"))
    return handles
