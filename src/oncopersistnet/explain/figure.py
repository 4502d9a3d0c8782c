"""The figure a reader looks at first: which genes push cells to each class.

One diverging horizontal bar chart on a shared logit axis: the top genes of
persister cells to the right (mean attribution in persister cells, > 0), the
top genes of non-persister cells to the left (mean attribution in non-persister
cells, < 0). Planted genes (simulated data) and published signature genes are
marked on the labels, so a reader can see at a glance whether the model leans
on the programme or on something else.
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


def _label(gene: str, planted: Collection[str] | None, signature_genes: Collection[str]) -> str:
    marks = (PLANTED_MARK if planted is not None and gene in planted else "") + (
        SIGNATURE_MARK if gene in signature_genes else ""
    )
    return f"{gene} {marks}" if marks else gene


#: (table key, table column, colour, heading) of the two panels, left to right.
PANELS = (
    (
        "non_persister",
        "mean_attribution_non_persister",
        NON_PERSISTER_COLOUR,
        "non-persister cells: what pushes them away from persister",
    ),
    (
        "persister",
        "mean_attribution_persister",
        PERSISTER_COLOUR,
        "persister cells: what pushes them towards persister",
    ),
)


def plot_attributions(
    table: pd.DataFrame,
    top: dict[str, list[str]],
    path: Path,
    *,
    n_genes: int = 15,
    planted: Collection[str] | None = None,
    signature_genes: Collection[str] = (),
    title: str = "",
) -> Path:
    """Write the diverging bar chart of the top ``n_genes`` genes per class to ``path`` (PNG, atomically).

    A butterfly chart: non-persister cells' top genes on the left (mean
    attribution < 0), persister cells' on the right (> 0), each panel with its
    own scale, because the baseline (an average training cell) sits much closer
    to non-persister cells, so their attributions are several times smaller and
    would be invisible on a shared axis. ``planted``: genes the simulator
    planted (``None`` on real data: no marker, no lighter bars);
    ``signature_genes``: genes of the shipped signatures.
    """
    n_rows = max(1, max(len(top[key][:n_genes]) for key, *_ in PANELS))
    fig = Figure(figsize=(10.5, max(3.2, 0.27 * n_rows + 1.9)))
    FigureCanvasAgg(fig)  # its own Agg canvas: no global backend, nothing registered with pyplot
    axes = fig.subplots(1, 2)
    for ax, panel in zip(axes, PANELS, strict=True):
        _draw_panel(
            ax,
            table,
            panel,
            genes=top[panel[0]][:n_genes],
            n_rows=n_rows,
            planted=planted,
            signature_genes=signature_genes,
        )
    handles = _legend_handles(planted, signature_genes)
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=len(handles),
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, -0.01),
    )
    fig.suptitle(
        (title or f"Top {n_genes} genes per class")
        + "\nintegrated gradients of the calibrated persister logit, "
        "from an average training cell to each cell",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.subplots_adjust(wspace=0.45)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    return path


def _draw_panel(
    ax: Axes,
    table: pd.DataFrame,
    panel: tuple[str, str, str, str],
    *,
    genes: list[str],
    n_rows: int,
    planted: Collection[str] | None,
    signature_genes: Collection[str],
) -> None:
    """One side of the butterfly: ``genes`` as bars, strongest on top, on the panel's own scale."""
    key, column, colour, heading = panel
    values = np.array([table.loc[g, column] for g in genes], dtype=float)
    y = np.arange(n_rows)[::-1][: len(genes)]  # strongest gene on top
    alphas = [1.0 if planted is None or g in planted else 0.4 for g in genes]
    for yi, value, alpha in zip(y, values, alphas, strict=True):
        ax.barh(yi, value, color=colour, alpha=alpha, height=0.72)
    ax.set_yticks(y)
    ax.set_yticklabels([_label(g, planted, signature_genes) for g in genes], fontsize=8.5)
    ax.set_ylim(-0.6, n_rows - 0.4)
    extent = float(np.abs(values).max()) * 1.08 if values.size else 1.0
    if key == "non_persister":
        ax.set_xlim(-extent, 0.0)
    else:
        ax.set_xlim(0.0, extent)
        ax.yaxis.tick_right()
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.grid(axis="x", alpha=0.3)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_title(heading, fontsize=9, color=colour)
    ax.set_xlabel("mean attribution, logit units (each panel its own scale)", fontsize=8.5)
    if not genes:
        ax.text(0.5, 0.5, "no gene pushes this way", transform=ax.transAxes, ha="center", fontsize=9)


def _legend_handles(planted: Collection[str] | None, signature_genes: Collection[str]) -> list[Patch]:
    """The class colours, then the planted and signature marks where the figure uses them."""
    handles = [
        Patch(color=NON_PERSISTER_COLOUR, label="non-persister cells"),
        Patch(color=PERSISTER_COLOUR, label="persister cells"),
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
