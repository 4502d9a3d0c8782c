"""Integrated gradients through the whole deployed path, from genes to the calibrated logit.

Why genes and not PCA components: a biologist asks "which genes made this call",
and the network only ever sees 50 PCA components that each mix hundreds of
genes. Attributing to the log-normalised expression of the genes the model
reads (the output of :meth:`DeployedGraph.expression`) lets the gradient flow
back through the PCA loadings, the min-max scaling and the network, so an
attribution is a statement about a gene.

Why integrated gradients (Sundararajan et al. 2017): a plain gradient says how
the logit moves for an infinitesimal change, which saturates for confidently
classified cells. IG averages the gradient along the straight path from a
baseline to the cell and multiplies by the distance travelled, so the
attributions of one cell add up to ``logit(cell) - logit(baseline)``
(completeness), which makes them comparable across genes and cells.

Baseline: the training mean of each gene's log-normalised expression (the
graph's ``impute_mean`` buffer), an "average training cell". The same vector
imputes missing genes, so a gene the input lacks sits exactly at the baseline
and gets an attribution of exactly zero: IG never credits a gene that was not
measured.

Class-contrastive baseline (:func:`contrastive_gradients`): the average
training cell answers "what moves this cell away from an average cell", and
since a persister is above the average in every up gene and a non-persister
below it, the same genes carry both classes (VIM is "persister evidence" in
persister cells and, seen from below the mean, "non-persister evidence" in the
others). Integrating each persister cell from the mean non-persister cell, and
each non-persister cell from the mean persister cell, asks the question a
biologist means directly: what makes this persister differ from the average
non-persister (and the other way round). Same cost: one integral per cell.

Target: the calibrated logit, ``network(features) * scale + shift``, not the
probability: the sigmoid would squash the differences between confident cells
and make completeness a statement about a bounded quantity.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from oncopersistnet.errors import ModelError
from oncopersistnet.export.graph import DeployedGraph
from oncopersistnet.model.network import PersisterNetwork
from oncopersistnet.preprocessing.transformer import CellPreprocessor

#: Rows (cells x steps) per forward/backward pass: bounds memory (~2048 x genes floats per tensor).
_ROWS_PER_PASS = 2048


@contextlib.contextmanager
def _single_threaded() -> Iterator[None]:
    """Run torch on one intra-op thread, then restore the caller's setting.

    The network's ops are small (a 25-step LSTM of width 32), so splitting them
    over threads costs more in synchronisation than it gains; on a busy 2-core
    machine 745 test cells took 1.2 s on one thread and 23 s on two.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class Attributions:
    """Per-cell, per-gene integrated gradients and what is needed to check them."""

    values: np.ndarray  # cells x selected genes: attribution to the calibrated logit
    path_gradient: (
        np.ndarray
    )  # cells x selected genes: the mean gradient along the path (its sign = direction the model reads)
    genes: np.ndarray  # the selected genes, in the graph's order
    expression: np.ndarray  # cells x selected genes: the log-normalised input the attributions are about
    logit: np.ndarray  # calibrated logit of each cell
    baseline_logit: float | np.ndarray  # calibrated logit of the baseline: one (shared) or per cell

    @property
    def completeness_gap(self) -> np.ndarray:
        """``sum(attributions) - (logit - baseline_logit)`` per cell: ~0 when the integral is resolved."""
        return self.values.sum(axis=1) - (self.logit - self.baseline_logit)

    @property
    def probability(self) -> np.ndarray:
        """Calibrated persister probability of each cell (what the deployed model returns)."""
        return 1.0 / (1.0 + np.exp(-self.logit))


def calibrated_logit(graph: DeployedGraph, expression: torch.Tensor) -> torch.Tensor:
    """The logit behind the deployed probability: ``sigmoid`` of it is ``graph(counts)``."""
    network = graph.network
    return network(graph.features(expression)) * network.calibration[0] + network.calibration[1]


def _path_fractions(steps: int) -> torch.Tensor:
    """Midpoint Riemann rule on [0, 1]: error O(1/steps^2) for a smooth path, no endpoint double-counting."""
    return (torch.arange(steps, dtype=torch.float32) + 0.5) / steps


def deployed_graph(preprocessor: CellPreprocessor, network: PersisterNetwork) -> DeployedGraph:
    """The exported path (the same module the ONNX file is traced from), on CPU, in eval mode."""
    return DeployedGraph(preprocessor, network).cpu().eval()


def _checked_inputs(
    graph: DeployedGraph, counts: np.ndarray, genes: Sequence[str], *, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """``counts`` as float32 and ``genes`` as str, or a :class:`ModelError` naming what does not fit."""
    if steps < 1:
        raise ModelError(f"integrated gradients: steps must be >= 1, got {steps}")
    counts = np.asarray(counts, dtype=np.float32)
    genes = np.asarray(genes, dtype=str)
    if counts.ndim != 2 or (counts.shape[0] and counts.shape[1] <= int(graph.selected.max())):
        raise ModelError(
            f"integrated gradients: expected cells x model genes counts, got shape {counts.shape}"
        )
    if genes.size != graph.impute_mean.numel():
        raise ModelError(
            f"integrated gradients: {genes.size} gene names for {graph.impute_mean.numel()} selected genes"
        )
    return counts, genes


def integrated_gradients(
    graph: DeployedGraph, counts: np.ndarray, genes: Sequence[str], *, steps: int = 32
) -> Attributions:
    """IG of the calibrated logit w.r.t. the selected genes' log-normalised expression.

    ``counts``: raw counts over the model's genes (``cells x len(genes_)``,
    float32, NaN = gene missing), as the exported graph takes them; ``genes``:
    the names of the selected genes (``preprocessor.genes_[preprocessor.selected_]``).
    Runs on CPU in eval mode (BatchNorm running statistics, no dropout), so a
    cell's attributions do not depend on which cells share its batch.
    """
    counts, genes = _checked_inputs(graph, counts, genes, steps=steps)
    graph = graph.cpu().eval()
    with _single_threaded():
        with torch.no_grad():
            expression = graph.expression(torch.from_numpy(counts))
        return _integrate(graph, expression, graph.impute_mean.detach().clone(), genes=genes, steps=steps)


def contrastive_gradients(
    graph: DeployedGraph,
    counts: np.ndarray,
    genes: Sequence[str],
    *,
    is_persister: np.ndarray,
    steps: int = 32,
) -> Attributions:
    """IG of each cell from the other class's mean cell (see the module docstring).

    The mean cells are the means of the log-normalised expression of the given
    cells of each class (``is_persister``), the space the training-mean
    baseline lives in. Completeness holds per cell: a persister cell's
    attributions add up to ``logit(cell) - logit(mean non-persister)``, and
    ``baseline_logit`` is per cell. Needs cells of both classes.
    """
    counts, genes = _checked_inputs(graph, counts, genes, steps=steps)
    classes = np.asarray(is_persister, dtype=bool)
    if classes.shape != (counts.shape[0],):
        raise ModelError(f"contrastive attributions: {classes.size} class labels for {counts.shape[0]} cells")
    if classes.all() or not classes.any():
        raise ModelError("contrastive attributions: need cells of both classes, one class has none")
    graph = graph.cpu().eval()
    with _single_threaded():
        with torch.no_grad():
            expression = graph.expression(torch.from_numpy(counts))
            mask = torch.from_numpy(classes)
            baselines = torch.where(
                mask[:, None], expression[~mask].mean(dim=0), expression[mask].mean(dim=0)
            )
        return _integrate(graph, expression, baselines, genes=genes, steps=steps)


def _integrate(
    graph: DeployedGraph, expression: torch.Tensor, baseline: torch.Tensor, *, genes: np.ndarray, steps: int
) -> Attributions:
    """The integral itself, batched over cells x steps (see :func:`integrated_gradients`).

    ``baseline``: one vector shared by every cell (``genes``), or one per cell (``cells x genes``).
    """
    n_cells, n_genes = expression.shape
    shared = baseline.ndim == 1
    baselines = baseline.expand(n_cells, n_genes) if shared else baseline
    with torch.no_grad():
        logit = calibrated_logit(graph, expression).numpy().astype(np.float64)
        at_baseline = calibrated_logit(graph, baseline[None, :] if shared else baselines).numpy()
    baseline_logit = float(at_baseline[0]) if shared else at_baseline.astype(np.float64)
    fractions = _path_fractions(steps)
    values = np.zeros((n_cells, n_genes), dtype=np.float64)
    gradients = np.zeros((n_cells, n_genes), dtype=np.float64)
    cells_per_pass = max(1, _ROWS_PER_PASS // steps)
    for start in range(0, n_cells, cells_per_pass):
        x = expression[start : start + cells_per_pass]
        origin = baselines[start : start + cells_per_pass]
        delta = x - origin
        path = (origin[None] + fractions[:, None, None] * delta[None]).reshape(-1, n_genes)
        path.requires_grad_(True)
        # autograd.grad w.r.t. the path only: no parameter .grad is touched.
        (grad,) = torch.autograd.grad(calibrated_logit(graph, path).sum(), path)
        mean_grad = grad.reshape(steps, x.shape[0], n_genes).mean(dim=0)
        gradients[start : start + x.shape[0]] = mean_grad.double().numpy()
        values[start : start + x.shape[0]] = (delta * mean_grad).double().numpy()
    return Attributions(
        values=values,
        path_gradient=gradients,
        genes=genes,
        expression=expression.numpy().astype(np.float64),
        logit=logit,
        baseline_logit=baseline_logit,
    )


def attention_by_position(graph: DeployedGraph, counts: np.ndarray) -> np.ndarray | None:
    """Attention weights ``(cells, positions)`` when the network pools with attention, else ``None``.

    Only networks with an ``attention_weights(features)`` method (the attention
    CNN-LSTM) have them. They say where along the PCA-component sequence the
    head read, not which genes mattered, so they complement, never replace, the
    gene attributions.
    """
    network = graph.network
    if not hasattr(network, "attention_weights"):
        return None
    graph = graph.cpu().eval()
    with torch.no_grad():
        features = graph.features(graph.expression(torch.from_numpy(np.asarray(counts, dtype=np.float32))))
        return network.attention_weights(features).double().numpy()
