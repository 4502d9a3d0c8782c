"""``oncopersistnet.pl``: plots of the calls :func:`oncopersistnet.annotate` wrote, scanpy style.

Figures are drawn on a :class:`matplotlib.figure.Figure` with its own Agg canvas, never
through pyplot: importing or calling this module changes no global backend or state, so
it is safe inside notebooks, servers and tests alike (as ``evaluation/plots.py``).
"""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from oncopersistnet.api import LABEL_CATEGORIES
from oncopersistnet.data.labels import NON_PERSISTER, PERSISTER
from oncopersistnet.errors import InputDataError
from oncopersistnet.inference.calls import UNCERTAIN
from oncopersistnet.inference.signal import NO_CALL
from oncopersistnet.inference.writers import OBS_LABEL, OBS_OOD

__all__ = ["CALL_COLOURS", "calls"]

#: One colour per call; no_call is grey, so cells without a call recede rather than mislead.
CALL_COLOURS = {PERSISTER: "#d62728", NON_PERSISTER: "#1f77b4", UNCERTAIN: "#ff7f0e", NO_CALL: "#b0b0b0"}


def _embedding(adata: ad.AnnData, basis: str) -> np.ndarray:
    """The first two columns of ``obsm['X_<basis>']``, or a clear error naming what exists."""
    key = f"X_{basis}"
    if key not in adata.obsm:
        available = ", ".join(k.removeprefix("X_") for k in adata.obsm.keys()) or "none"
        raise InputDataError(
            f"AnnData has no obsm[{key!r}] to plot on (embeddings available: {available}); "
            f"compute one first, e.g. sc.pp.neighbors(adata); sc.tl.{basis}(adata)"
        )
    coordinates = np.asarray(adata.obsm[key])
    if coordinates.ndim != 2 or coordinates.shape[1] < 2:
        raise InputDataError(f"obsm[{key!r}] has shape {coordinates.shape}; two dimensions are needed")
    return coordinates[:, :2]


def calls(
    adata: ad.AnnData,
    basis: str = "umap",
    *,
    ax: Axes | None = None,
    point_size: float | None = None,
    title: str | None = None,
    **scatter: Any,
) -> Figure:
    """Scatter the cells on ``obsm['X_<basis>']``, coloured by ``obs['persister_label']``, with the
    out-of-distribution cells (``obs['persister_ood']``) ringed in black.

    Cells without a call are drawn first, in grey, so the called cells sit on top. Draws on
    ``ax`` when given (its figure is returned), else on a new figure; ``scatter`` goes to
    :meth:`Axes.scatter`. Raises :class:`InputDataError` when the embedding or the
    annotation is missing (run :func:`oncopersistnet.annotate` first).
    """
    if OBS_LABEL not in adata.obs:
        raise InputDataError(
            f"AnnData has no obs[{OBS_LABEL!r}]: run oncopersistnet.annotate(adata) before plotting the calls"
        )
    coordinates = _embedding(adata, basis)
    labels = np.asarray(adata.obs[OBS_LABEL].astype(str))
    if ax is None:
        figure = Figure(figsize=(5.5, 4.5), layout="constrained")
        FigureCanvasAgg(figure)
        ax = figure.add_subplot()
    size = point_size if point_size is not None else max(2.0, min(30.0, 12000 / max(len(labels), 1)))
    for label in (NO_CALL, *[c for c in LABEL_CATEGORIES if c != NO_CALL]):
        chosen = labels == label
        ax.scatter(
            coordinates[chosen, 0],
            coordinates[chosen, 1],
            s=size,
            c=CALL_COLOURS[label],
            label=f"{label} ({int(chosen.sum()):,})",
            linewidths=0,
            **scatter,
        )
    ood = (  # NA (a cell without a call) is not ringed
        adata.obs[OBS_OOD].astype("boolean").fillna(False).to_numpy(dtype=bool)
        if OBS_OOD in adata.obs
        else np.zeros(len(labels), dtype=bool)
    )
    if ood.any():  # ringed, so a call on a cell unlike the training cells is seen as such
        ax.scatter(
            coordinates[ood, 0],
            coordinates[ood, 1],
            s=size * 2.5,
            facecolors="none",
            edgecolors="black",
            linewidths=0.6,
            label=f"out of distribution ({int(ood.sum()):,})",
        )
    ax.set_xlabel(f"{basis.upper()} 1")
    ax.set_ylabel(f"{basis.upper()} 2")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title if title is not None else "OncoPersistNet calls")
    ax.legend(loc="best", fontsize="small", markerscale=max(1.0, 20 / size), frameon=False)
    return ax.figure
