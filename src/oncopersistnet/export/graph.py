"""The whole deployed path as one torch module, ready to trace into ONNX.

Deployment needs nothing but onnxruntime, so everything between raw counts and
the probability lives in the graph: NaN-aware library-size normalisation, log1p,
gene selection, mean imputation of missing genes, and min-max scaling and PCA
folded into one matrix multiply (both are affine), and the network's
probability calibration (fitted on validation cells). The arrays come from a fitted
:class:`~oncopersistnet.preprocessing.CellPreprocessor`, so the graph and the
Python path share one source of truth.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from oncopersistnet.model.network import PersisterNetwork
from oncopersistnet.preprocessing.distance import TrainingDistance
from oncopersistnet.preprocessing.transformer import CellPreprocessor


class DeployedGraph(nn.Module):
    """Raw counts over the model's genes (NaN = missing gene) -> persister probability."""

    def __init__(self, preprocessor: CellPreprocessor, network: PersisterNetwork) -> None:
        super().__init__()
        p = preprocessor
        components = p.components_.astype(np.float64)
        # (x - min) / range  then  (s - pca_mean) @ C.T   ==   x @ W + b
        weight = (components / p.range_[None, :]).T
        bias = -((p.min_ / p.range_) + p.pca_mean_) @ components.T
        self.target_sum = float(p.target_sum)
        self.register_buffer("selected", torch.from_numpy(p.selected_.astype(np.int64)))
        self.register_buffer("impute_mean", torch.from_numpy(p.impute_mean_.astype(np.float32)))
        self.register_buffer("weight", torch.from_numpy(weight.astype(np.float32)))
        self.register_buffer("bias", torch.from_numpy(bias.astype(np.float32)))
        self.network = network.eval()

    def expression(self, counts: torch.Tensor) -> torch.Tensor:
        """Log-normalised expression of the selected genes, missing genes at their training mean.

        Only the library size needs every gene; the selected genes (about a
        quarter) are gathered before the element-wise work, and a missing gene's
        NaN is carried through the log and replaced by its training mean at the
        end. Same result as normalising everything first, with a fraction of the
        element-wise work: onnxruntime scores ~25 % more cells/s at batch 256.
        """
        missing = torch.isnan(counts)
        library = (
            torch.where(missing, torch.zeros_like(counts), counts).sum(dim=1, keepdim=True).clamp(min=1.0)
        )
        chosen = counts.index_select(1, self.selected)
        logged = torch.log1p(chosen * (self.target_sum / library))
        return torch.where(torch.isnan(logged), self.impute_mean.expand_as(logged), logged)

    def features(self, expression: torch.Tensor) -> torch.Tensor:
        """PCA features the network reads: min-max scaling and projection as one affine map."""
        return expression @ self.weight + self.bias

    def forward(self, counts: torch.Tensor) -> torch.Tensor:
        """Probabilities, shape ``(batch,)``."""
        return self.network.calibrated_probability(self.features(self.expression(counts)))


class TrustedGraph(nn.Module):
    """:class:`DeployedGraph` plus its out-of-distribution distance: two outputs, one file.

    The distance is :class:`~oncopersistnet.preprocessing.distance.TrainingDistance`'s arithmetic
    on the same expression the network reads, so the deployed artifact flags a cell unlike the
    training cells without a second file or a second pass over the counts.
    """

    def __init__(
        self, graph: DeployedGraph, preprocessor: CellPreprocessor, distance: TrainingDistance
    ) -> None:
        super().__init__()
        p = preprocessor
        self.graph = graph
        # centred scaled expression = expression * (1 / range) - (min / range + pca_mean)
        self.register_buffer("inv_range", torch.from_numpy((1.0 / p.range_).astype(np.float32)))
        self.register_buffer("offset", torch.from_numpy((p.min_ / p.range_ + p.pca_mean_).astype(np.float32)))
        self.register_buffer("components", torch.from_numpy(p.components_.astype(np.float32)))
        self.register_buffer(
            "inv_component_variance",
            torch.from_numpy((1.0 / distance.component_variance_).astype(np.float32)),
        )
        self.inv_residual_variance = float(1.0 / distance.residual_variance_)
        self.n_components = float(p.components_.shape[0])

    def forward(self, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(probability, distance), each of shape ``(batch,)``."""
        measured = (~torch.isnan(counts.index_select(1, self.graph.selected))).to(counts.dtype)
        expression = self.graph.expression(counts)
        coordinates = self.graph.features(expression)
        probability = self.graph.network.calibrated_probability(coordinates)
        centred = expression * self.inv_range - self.offset
        residual = (centred - coordinates @ self.components) * measured
        squared = (coordinates * coordinates * self.inv_component_variance).sum(dim=1) + (
            residual * residual
        ).sum(dim=1) * self.inv_residual_variance
        distance = torch.sqrt(squared / (self.n_components + measured.sum(dim=1)))
        return probability, distance
