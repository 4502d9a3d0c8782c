"""A deterministic, seeded simulator of persister / non-persister scRNA-seq counts.

Why simulate: the pipeline must run end to end on a fresh clone with no download,
and tests need data whose truth is known. The counts are shaped like droplet
scRNA-seq so that every downstream step meets realistic input:

* gene-specific mean expression spanning orders of magnitude (log-normal);
* cell library sizes varying several-fold (log-normal);
* over-dispersed counts: negative-binomial, drawn as a gamma-Poisson mixture with a
  gene-specific dispersion, which produces the many zeros of droplet data;
* sample-level effects: every biological sample shifts many genes a little and its
  library size a little, so a classifier that memorises samples looks good on a
  cell-level split and poor on a sample-level one;
* a persister expression programme: lower proliferation / cell-cycle genes
  (MKI67, TOP2A, CCNB1 ...), higher oxidative-stress response and fatty-acid
  oxidation (NQO1, HMOX1, GPX4, CPT1A ...) and EMT / neural-crest-like markers
  (AXL, NGFR, SERPINE1 ...). Sources: Sharma et al. 2010 Cell 141:69 (KDM5A,
  drug-tolerant persisters); Shaffer et al. 2017 Nature 546:431 (AXL, NGFR,
  SERPINE1 in pre-resistant melanoma cells); Hangauer et al. 2017 Nature 551:247
  (GPX4 dependency of persisters); Oren et al. 2021 Nature 596:576 (cycling and
  non-cycling persisters, fatty-acid oxidation / NRF2 programme).

Experimental design, as in published persister time courses: half the samples
are untreated day-0 cultures (label non-persister), the other half drug-treated
surviving cultures harvested at day 7 or day 14 (label persister; the programme
is stronger at day 14). The label is therefore a property of the sample, as in
real data, and a classifier can score well on a cell-level split by recognising
samples: only the sample-level split measures it honestly. Realism knobs:

* ``cycling_fraction``: persisters that keep cycling (Oren et al. 2021) keep
  their proliferation genes, so "low cell cycle" alone does not identify them;
* untreated cultures carry a few pre-existing persister-like cells (Shaffer et
  al. 2017) with part of the programme switched on, labelled non-persister;
* ``label_noise``: a fraction of cells get the other label (mis-assigned cells).

Gene names are real human symbols from the vendored GENCODE v44 table
(:mod:`oncopersistnet.genes`): the programme genes plus background genes drawn
by ``world_seed``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from oncopersistnet.config import SimulateConfig
from oncopersistnet.data.labels import NON_PERSISTER, PERSISTER
from oncopersistnet.errors import ConfigError
from oncopersistnet.genes import load_gene_table

logger = logging.getLogger(__name__)

# fmt: off
# Genes lower in persisters: proliferation and cell cycle.
PROLIFERATION_GENES = (
    "MKI67", "TOP2A", "CCNB1", "CDK1", "MCM2", "PCNA", "E2F1", "MYC", "CCND1",
    "AURKA", "BUB1", "CENPF", "TYMS", "MCM7", "CDC20", "PLK1",
)
# Genes higher in persisters: EMT / neural-crest-like, stress response, fatty-acid oxidation.
PERSISTER_GENES = (
    "AXL", "NGFR", "SERPINE1", "KDM5A", "ALDH1A1", "CD44", "SOX9", "VIM", "TGFBI",
    "FN1", "WNT5A", "EGFR", "PDGFRB", "HMOX1", "NQO1", "TXNRD1", "GPX4", "SLC7A11",
    "CPT1A", "PPARGC1A", "ACADM", "HADHA", "CDKN1A", "FOS", "JUN",
)
# fmt: on
PROGRAMME_GENES = PROLIFERATION_GENES + PERSISTER_GENES

_CHUNK_CELLS = 2000


# Background genes: clean symbols only (no ENSG-named, miRNA, snoRNA, lncRNA or antisense loci).
_BACKGROUND_SYMBOL = re.compile(r"^[A-Z][A-Z0-9]{1,7}$")
_BACKGROUND_EXCLUDE = re.compile(
    r"^(MIR|SNOR|LINC|RNU|RNA5|RNY|SCARNA|LOC|ENSG|MT|TRNA|Y_RNA|U\d)|P\d+$"
)  # + pseudogenes
# Fraction of each untreated culture that is persister-like but labelled non-persister.
_PRE_PERSISTER_FRACTION = 0.05


def _gene_names(n_genes: int, world: np.random.Generator) -> list[str]:
    """Programme genes first (as many as fit), then real background symbols drawn by ``world``."""
    named = list(PROGRAMME_GENES[:n_genes])
    pool = sorted(
        {
            s
            for s in load_gene_table().symbols
            if _BACKGROUND_SYMBOL.match(s) and not _BACKGROUND_EXCLUDE.search(s)
        }
        - set(PROGRAMME_GENES)
    )
    background = world.choice(pool, size=n_genes - len(named), replace=False)
    return named + [str(g) for g in background]


@dataclass(frozen=True)
class SimulatedWorld:
    """The biology ``world_seed`` fixes: what every cell of every seed is drawn from.

    Kept apart from the cell draws so that the truth an explanation is checked
    against (:func:`planted_programme`) comes from the very arrays that made the
    counts, not from a re-implementation that could drift.
    """

    genes: list[str]
    base: np.ndarray  # baseline expression proportions, sum 1
    dispersion: np.ndarray  # negative-binomial dispersion per gene
    programme: np.ndarray  # persister log fold change per gene (natural log, full activity, x effect_size)
    is_proliferation: np.ndarray  # the cell-cycle genes cycling persisters keep


def simulate_world(config: SimulateConfig) -> SimulatedWorld:
    """Draw genes, baseline means, dispersions and the persister programme from ``world_seed``.

    The draws happen in exactly the order :func:`simulate_cells` always made
    them, so refactoring them out changed no simulated count.
    """
    n_genes = config.n_genes
    world = np.random.default_rng(config.world_seed)
    genes = _gene_names(n_genes, world)

    # Gene-level parameters: baseline proportions spanning ~4 orders of magnitude
    # and negative-binomial dispersions (larger for lowly expressed genes).
    log_base = world.normal(0.0, 2.4, n_genes)
    base = np.exp(log_base)
    base /= base.sum()
    dispersion = np.exp(world.normal(np.log(0.3), 0.5, n_genes)) * (1 + 0.5 * (log_base < 0))

    # Persister programme: log fold changes in persisters.
    programme = np.zeros(n_genes)
    is_prolif = np.isin(genes, PROLIFERATION_GENES)
    is_persist = np.isin(genes, PERSISTER_GENES)
    programme[is_prolif] = -world.uniform(0.6, 1.4, is_prolif.sum())
    programme[is_persist] = world.uniform(0.6, 1.4, is_persist.sum())
    # A diffuse component: a few percent of background genes shift a little.
    background_idx = np.flatnonzero(~(is_prolif | is_persist))
    if background_idx.size:
        diffuse = world.choice(background_idx, size=max(1, background_idx.size // 25), replace=False)
        programme[diffuse] = world.normal(0.0, 0.5, diffuse.size)
    programme *= config.effect_size
    return SimulatedWorld(
        genes=genes, base=base, dispersion=dispersion, programme=programme, is_proliferation=is_prolif
    )


def planted_programme(config: SimulateConfig) -> pd.Series:
    """Planted persister log fold change per gene (gene -> lfc; 0 for untouched genes).

    Natural-log shift of a gene's expression rate in a persister at full
    programme activity (day-14 cultures; day 7 is 0.8 of it, cell-to-cell
    activity varies 0.6-1.4x, and cycling persisters keep their proliferation
    genes). Besides the named :data:`PROGRAMME_GENES`, about 1 in 25 background
    genes carries a small diffuse shift; this is the full truth that gene-level
    explanations of a model trained on simulated data can be scored against.
    """
    biology = simulate_world(config)
    return pd.Series(biology.programme, index=pd.Index(biology.genes, name="gene"), name="log_fold_change")


@dataclass(frozen=True)
class _Samples:
    """The cultures: their condition, programme strength, size and sample-level effects."""

    names: list[str]
    conditions: list[str]
    strength: np.ndarray  # programme strength per sample: 0 untreated, 0.8 day 7, 1.0 day 14
    sizes: np.ndarray  # cells per sample
    shift: np.ndarray  # (samples, genes) log-rate shift
    depth: np.ndarray  # library-size factor per sample
    n_untreated: int
    n_treated: int


@dataclass(frozen=True)
class _Cells:
    """Per-cell draws: sample, programme activity, cycling, label and library size."""

    sample: np.ndarray  # sample index per cell
    activity: np.ndarray
    cycling: np.ndarray
    is_persister: np.ndarray
    flipped: np.ndarray  # label noise
    library: np.ndarray


def _check_design(config: SimulateConfig) -> None:
    """Reject a design the simulator cannot fill, naming the params.yaml key."""
    n_cells, n_samples = config.n_cells, config.n_samples
    if n_samples < 2:
        raise ConfigError("simulate.n_samples: at least 2 samples (one untreated, one treated) are needed")
    if n_cells < 2 * n_samples:
        raise ConfigError(
            f"simulate.n_cells: {n_cells} cells cannot fill {n_samples} samples (need >= 2 each)"
        )
    if not 0.0 < config.persister_fraction < 1.0:
        raise ConfigError("simulate.persister_fraction: must be strictly between 0 and 1")


def _draw_samples(config: SimulateConfig, rng: np.random.Generator) -> _Samples:
    """Untreated day-0 cultures first, then treated survivors at day 7 / day 14; their sizes and effects."""
    n_cells, n_samples = config.n_cells, config.n_samples
    n_untreated = n_samples - n_samples // 2
    n_treated = n_samples - n_untreated
    conditions = ["day0"] * n_untreated + [("treated_day7", "treated_day14")[i % 2] for i in range(n_treated)]
    strength = np.array([0.0] * n_untreated + [(0.8, 1.0)[i % 2] for i in range(n_treated)])
    # Treated cultures hold persister_fraction of all cells; cells spread evenly within each arm.
    n_treated_cells = int(round(n_cells * config.persister_fraction))
    n_treated_cells = min(max(n_treated_cells, 2 * n_treated), n_cells - 2 * n_untreated)
    untreated_spread = np.full(n_untreated, 1 / n_untreated)
    treated_spread = np.full(n_treated, 1 / n_treated)
    sizes = np.concatenate(
        [
            rng.multinomial(n_cells - n_treated_cells - 2 * n_untreated, untreated_spread) + 2,
            rng.multinomial(n_treated_cells - 2 * n_treated, treated_spread) + 2,
        ]
    )
    shift = rng.normal(0.0, 0.3, (n_samples, config.n_genes))
    depth = np.exp(rng.normal(0.0, 0.25, n_samples))
    # Names carry the seed: cells drawn with another seed are other cultures.
    names = [f"sim{config.seed}-S{i + 1:02d}-{conditions[i]}" for i in range(n_samples)]
    return _Samples(names, conditions, strength, sizes, shift, depth, n_untreated, n_treated)


def _library_depth(n_genes: int) -> float:
    """Median library size: ~900 counts for 2,000 genes (droplet data).

    Smaller panels get fewer counts but more per gene (square-root scaling, floored
    at half depth so that cells still pass the default QC thresholds), as targeted
    panels do.
    """
    return 900.0 * max(np.sqrt(n_genes / 2000.0), 0.5)


def _draw_cells(config: SimulateConfig, samples: _Samples, rng: np.random.Generator) -> _Cells:
    """Each cell's sample, programme activity, cycling state, (noisy) label and library size."""
    n_cells = config.n_cells
    sample_of_cell = np.repeat(np.arange(config.n_samples), samples.sizes)
    strength = samples.strength[sample_of_cell]
    treated = strength > 0
    # Programme activity per cell: the sample's strength, varying from cell to cell;
    # a few untreated cells are persister-like already.
    activity = strength * rng.uniform(0.6, 1.4, n_cells)
    pre_persister = ~treated & (rng.random(n_cells) < _PRE_PERSISTER_FRACTION)
    activity[pre_persister] = rng.uniform(0.3, 0.8, int(pre_persister.sum()))
    cycling = treated & (rng.random(n_cells) < config.cycling_fraction)
    is_persister = treated.copy()
    flipped = rng.random(n_cells) < config.label_noise
    is_persister[flipped] = ~is_persister[flipped]
    depth = _library_depth(config.n_genes)
    library = np.exp(rng.normal(np.log(depth), 0.45, n_cells)) * samples.depth[sample_of_cell]
    # Cell calling keeps droplets with enough UMIs: no library far below the bulk.
    library = np.maximum(library, 0.35 * depth)
    return _Cells(sample_of_cell, activity, cycling, is_persister, flipped, library)


def _draw_counts(
    biology: SimulatedWorld, samples: _Samples, cells: _Cells, *, rng: np.random.Generator
) -> sparse.csr_matrix:
    """Negative-binomial (gamma-Poisson) counts, ``_CHUNK_CELLS`` cells at a time to bound memory."""
    programme, dispersion = biology.programme, biology.dispersion
    proliferation = programme * biology.is_proliferation  # the cell-cycle part, which cycling persisters keep
    n_cells = len(cells.sample)
    blocks = []
    for start in range(0, n_cells, _CHUNK_CELLS):
        stop = min(start + _CHUNK_CELLS, n_cells)
        log_rate = (
            np.log(biology.base)[None, :]
            + samples.shift[cells.sample[start:stop]]
            + np.outer(cells.activity[start:stop], programme)
            - np.outer(cells.activity[start:stop] * cells.cycling[start:stop], proliferation)
        )
        rate = np.exp(log_rate - log_rate.max(axis=1, keepdims=True))
        rate /= rate.sum(axis=1, keepdims=True)
        mean = rate * cells.library[start:stop, None]
        shape = 1.0 / dispersion
        gamma = rng.gamma(shape[None, :], (mean * dispersion[None, :]))
        counts = rng.poisson(gamma).astype(np.int32)
        blocks.append(sparse.csr_matrix(counts))
    return sparse.vstack(blocks, format="csr")


def _cell_table(config: SimulateConfig, samples: _Samples, cells: _Cells) -> pd.DataFrame:
    """``obs``: sample, condition and label per cell, indexed by seed-specific cell names."""
    names, conditions = samples.names, samples.conditions
    labels = np.where(cells.is_persister, PERSISTER, NON_PERSISTER)
    return pd.DataFrame(
        {
            "sample": pd.Categorical([names[s] for s in cells.sample], categories=names),
            "condition": pd.Categorical(
                [conditions[s] for s in cells.sample], categories=sorted(set(conditions))
            ),
            "label": pd.Categorical(labels, categories=[NON_PERSISTER, PERSISTER]),
        },
        index=[f"sim{config.seed}-cell{i:06d}" for i in range(config.n_cells)],
    )


def simulate_cells(config: SimulateConfig) -> ad.AnnData:
    """Simulate a labelled count matrix (cells x genes, CSR of integer counts).

    The same ``config`` always yields the same matrix, labels and names: the steps
    below draw from ``rng`` in a fixed order (samples, cells, counts), which no
    refactoring may change.
    """
    _check_design(config)
    # Two generators: ``world_seed`` fixes the biology (gene means, dispersions,
    # the persister programme; :func:`simulate_world`), ``seed`` draws samples and
    # cells from it. New cells for prediction keep the world and change the seed.
    biology = simulate_world(config)
    rng = np.random.default_rng(config.seed)
    samples = _draw_samples(config, rng)
    cells = _draw_cells(config, samples, rng)
    matrix = _draw_counts(biology, samples, cells, rng=rng)

    adata = ad.AnnData(
        X=matrix, obs=_cell_table(config, samples, cells), var=pd.DataFrame(index=biology.genes)
    )
    adata.uns["source"] = {"simulator": "oncopersistnet.data.simulate", **vars(config)}
    n_cells, n_genes = config.n_cells, config.n_genes
    zero_fraction = 1.0 - matrix.nnz / (n_cells * n_genes)
    logger.info(
        "simulated %d cells x %d genes in %d samples (%d untreated, %d treated): %.1f%% persisters, "
        "%.1f%% zeros, %d cells with flipped labels",
        n_cells,
        n_genes,
        config.n_samples,
        samples.n_untreated,
        samples.n_treated,
        100 * cells.is_persister.mean(),
        100 * zero_fraction,
        int(cells.flipped.sum()),
    )
    return adata
