"""The labelled studies of the cross-study report, loaded into one common form.

Each ``cross_study.datasets`` entry becomes a :class:`LabelledDataset`: its
:class:`~oncopersistnet.data.cells.Cells` (raw counts as CSR, harmonised gene
symbols, binary labels: 1 = persister, or the study's positive class; the
biological sample of every cell) with its name and an ``origin`` line for the
report. Three sources:

* ``pipeline``: the pipeline's validated data (``data/validated/cells.h5ad``),
  which is simulated study A unless ``data.input`` points at the user's file;
* ``simulate``: :func:`oncopersistnet.data.simulate.simulate_cells` with the
  ``simulate`` section plus the entry's overrides (another ``world_seed`` is another
  study: other background genes, gene means and programme magnitudes);
* a file under ``data/external/`` (a dependency of the DVC stage), read like
  ``data.input`` with the entry's label and sample keys.

Every path is checked before anything is loaded, so a typo stops the stage in a
second with one line, not after minutes of simulation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import anndata as ad
import numpy as np

from oncopersistnet.choices import CROSS_STUDY_SOURCES
from oncopersistnet.config import (
    SIMULATE_OVERRIDES,
    CrossStudyDataset,
    LabelledDataConfig,
    Params,
)
from oncopersistnet.data.cells import Cells
from oncopersistnet.data.hdf5 import read_h5ad
from oncopersistnet.data.load import load_labelled
from oncopersistnet.data.simulate import simulate_cells
from oncopersistnet.errors import InputDataError
from oncopersistnet.genes.harmonize import harmonize_adata
from oncopersistnet.paths import ProjectPaths

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledDataset:
    """One study: its cells (raw counts over its own genes), its name, and where it came from."""

    name: str
    cells: Cells
    origin: str
    note: str = ""

    @property
    def n_cells(self) -> int:
        return self.cells.n_cells

    def subset(self, mask: np.ndarray) -> LabelledDataset:
        return replace(self, cells=self.cells.subset(mask))

    def describe(self) -> dict:
        """Size, samples and class balance, for the report and the metrics file."""
        return {
            "origin": self.origin,
            "note": self.note,
            "cells": self.n_cells,
            "genes": int(self.cells.genes.size),
            "samples": int(np.unique(self.cells.samples).size),
            "positive_fraction": float(self.cells.y.mean()) if self.n_cells else float("nan"),
        }


def from_anndata(name: str, adata: ad.AnnData, origin: str, *, note: str = "") -> LabelledDataset:
    """A labelled AnnData (``obs['label']`` persister / non-persister, ``obs['sample']``) as a study."""
    return LabelledDataset(name=name, cells=Cells.from_anndata(adata), origin=origin, note=note)


def load_labelled_file(
    name: str, config: LabelledDataConfig, origin: str, *, note: str = ""
) -> LabelledDataset:
    """A labelled file with harmonised genes.

    Any supported format; labels and samples are mapped as ``config`` says.
    """
    adata, _ = harmonize_adata(load_labelled(config))
    return from_anndata(name, adata, origin, note=note)


def _file_path(spec: CrossStudyDataset, index: int, paths: ProjectPaths) -> Path:
    where = f"cross_study.datasets[{index}] ({spec.name})"
    path = paths.external_file(f"{where}.source", spec.source, " (or use pipeline / simulate)")
    if not path.exists():
        raise InputDataError(f"{where}.source: {spec.source}: no such file")
    return path


def check_sources(specs: Sequence[CrossStudyDataset], paths: ProjectPaths) -> None:
    """Every file exists where DVC tracks it, and the pipeline's data exists when asked for.

    Nothing is read.
    """
    for index, spec in enumerate(specs):
        if spec.source == "pipeline":
            if not paths.validated.exists():
                raise InputDataError(
                    f"cross_study.datasets[{index}] ({spec.name}): {paths.validated}: no such file; "
                    "run the validate stage first"
                )
        elif spec.source not in CROSS_STUDY_SOURCES:
            _file_path(spec, index, paths)


def _pipeline_origin(params: Params) -> str:
    if params.data.input:
        return (
            f"the pipeline's validated data: the user's file {params.data.input} (data.input), not simulated"
        )
    s = params.simulate
    return (
        f"the pipeline's validated data: simulated (world_seed {s.world_seed}, "
        f"effect_size {s.effect_size:g}, {s.n_genes} genes)"
    )


def load_study(
    spec: CrossStudyDataset, index: int, params: Params, *, paths: ProjectPaths
) -> LabelledDataset:
    """Read or simulate one study and harmonise its gene names."""
    if spec.source == "pipeline":
        adata = read_h5ad(paths.validated)  # ingest harmonised its names already
        return from_anndata(spec.name, adata, _pipeline_origin(params), note=spec.note)
    if spec.source == "simulate":
        overrides = {k: getattr(spec, k) for k in SIMULATE_OVERRIDES if getattr(spec, k) is not None}
        config = replace(params.simulate, **overrides)
        adata, _ = harmonize_adata(simulate_cells(config))
        origin = (
            f"simulated (world_seed {config.world_seed}, effect_size {config.effect_size:g}, "
            f"{config.n_genes} genes, "
            f"{config.n_cells} cells, seed {config.seed})"
        )
        return from_anndata(spec.name, adata, origin, note=spec.note)
    path = _file_path(spec, index, paths)
    config = spec.at(str(path))
    positive = ", ".join(spec.persister_values)
    return load_labelled_file(
        spec.name,
        config,
        f"{spec.source} ({spec.label_key}: {positive} = positive, by {spec.sample_key})",
        note=spec.note,
    )


def subsample_per_sample(dataset: LabelledDataset, max_cells: int | None, seed: int) -> LabelledDataset:
    """At most ``max_cells`` cells of every sample, drawn without replacement (seeded); order kept."""
    if max_cells is None:
        return dataset
    rng = np.random.default_rng(seed)
    keep = np.zeros(dataset.n_cells, dtype=bool)
    for sample in np.unique(dataset.cells.samples):
        members = np.flatnonzero(dataset.cells.samples == sample)
        chosen = members if members.size <= max_cells else rng.choice(members, size=max_cells, replace=False)
        keep[chosen] = True
    return dataset.subset(keep)


def load_studies(params: Params, paths: ProjectPaths) -> list[LabelledDataset]:
    """Every study of ``cross_study.datasets``, subsampled per sample; paths checked first."""
    config = params.cross_study
    check_sources(config.datasets, paths)
    studies = []
    for index, spec in enumerate(config.datasets):
        study = subsample_per_sample(
            load_study(spec, index, params, paths=paths), config.max_cells_per_sample, config.seed + index
        )
        if len(np.unique(study.cells.y)) < 2:
            raise InputDataError(
                f"cross_study.datasets[{index}] ({spec.name}): only one class after mapping labels"
            )
        logger.info(
            "%s: %d cells x %d genes in %d samples (%.1f%% positive); %s",
            study.name,
            study.n_cells,
            study.cells.genes.size,
            np.unique(study.cells.samples).size,
            100 * study.cells.y.mean(),
            study.origin,
        )
        studies.append(study)
    return studies
