"""Leave one dataset out: train on the other studies, test transfer to the held-out one.

For every held-out study D of N >= 2 labelled studies:

1. **Source model**: the other studies are pooled over the union of their genes
   (a gene a study lacks is NaN for its cells, imputed with training means as the
   exported graph does); each is split by sample into train / validation
   (:func:`~oncopersistnet.preprocessing.split.split_by_sample`, its test samples
   returned to train); the preprocessor, the network of ``train.architecture`` and
   the baseline (``cross_study.baseline``, the compare stage's candidate) are
   fitted on the pooled training cells, early-stopped / calibrated on the pooled
   validation cells. No cell and no gene of D takes part.
2. **D is split by sample** into a labelled pool and a test set that stays fixed
   for every model and every k: ``max(k)`` samples per class (or ``max(k)``
   samples when every sample holds both classes) go to the pool, the rest to test.
3. On D's test cells, all mapped onto the source model's genes by
   :func:`~oncopersistnet.transfer.adapt.map_to_model`:

   * **zero-shot**: the source network and baseline as they are;
   * **fine-tuned** with the first k pool samples (for each k):
     :func:`~oncopersistnet.transfer.adapt.adapt` for the network; the baseline
     refitted on the source training cells plus the k target samples' training
     cells (features from the same re-scaled preprocessor the network reads);
   * **target-only**: the network and baseline trained from scratch on the same k
     samples (their own preprocessor, D's own genes), for reference.

   The k samples' cells are split by cell, stratified, into training and
   validation (``cross_study.pool_val_fraction``): with one sample per class there
   is no other way to early-stop and calibrate. Test samples never enter.
4. **Overlap sweep** (``cross_study.sweep_dataset``): zero-shot on D's test cells
   after removing, at random with a fixed seed, all but a fraction of the model
   genes D provides; the same thinning of the source validation cells gives the
   in-domain reference.

Every figure is also reported with the gene overlap: how many of the genes the
source model reads (after gene selection) D provides.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from oncopersistnet.config import Params
from oncopersistnet.data.cells import Cells
from oncopersistnet.data.labels import label_names
from oncopersistnet.errors import DataValidationError
from oncopersistnet.evaluation.candidates import make_candidate
from oncopersistnet.evaluation.folds import Fold, build_fold
from oncopersistnet.evaluation.metrics import classification_metrics
from oncopersistnet.preprocessing import CellPreprocessor, build_preprocessor
from oncopersistnet.preprocessing.split import split_by_sample
from oncopersistnet.registry.trainable import TrainableModel
from oncopersistnet.transfer.adapt import TargetCells, adapt, fine_tune_config, map_to_model
from oncopersistnet.transfer.studies import LabelledDataset

logger = logging.getLogger(__name__)

#: Metrics kept per row (the rest of ``classification_metrics`` stays out of the report).
REPORTED_METRICS = ("roc_auc", "pr_auc", "f1", "balanced_accuracy", "brier")
#: Minority-class share above which a sample counts as holding both classes.
MIXED_SAMPLE_MINORITY = 0.2


# ----------------------------------------------------------------------------- pooling
@dataclass(frozen=True)
class PooledCells:
    """Several studies over the union of their genes (``cells.X`` float32, NaN where a study lacks a gene).

    Samples and cell ids are prefixed ``<study>:``; ``study`` names the study of every cell.
    """

    cells: Cells
    study: np.ndarray

    def subset(self, mask: np.ndarray) -> PooledCells:
        return PooledCells(self.cells.subset(mask), self.study[mask])


def pool_studies(studies: Sequence[LabelledDataset]) -> PooledCells:
    """Stack ``studies`` over the union of their genes (first-seen order); absent genes are NaN."""
    genes = list(dict.fromkeys(g for s in studies for g in s.cells.genes))
    position = {g: j for j, g in enumerate(genes)}
    blocks = []
    for study in studies:
        block = np.full((study.n_cells, len(genes)), np.nan, dtype=np.float32)
        block[:, [position[g] for g in study.cells.genes]] = study.cells.X.toarray()
        blocks.append(block)
    cells = Cells(
        X=np.vstack(blocks),
        y=np.concatenate([s.cells.y for s in studies]),
        samples=np.concatenate([np.char.add(f"{s.name}:", s.cells.samples.astype(str)) for s in studies]),
        cell_ids=np.concatenate([np.char.add(f"{s.name}:", s.cells.cell_ids.astype(str)) for s in studies]),
        genes=np.asarray(genes, dtype=str),
    )
    return PooledCells(cells, study=np.concatenate([np.full(s.n_cells, s.name) for s in studies]))


def source_split(pooled: PooledCells, params: Params) -> np.ndarray:
    """``train`` / ``val`` per pooled cell, by sample within each study.

    Each study gives validation samples.
    """
    cells = pooled.cells
    split = np.empty(cells.n_cells, dtype=object)
    for name in dict.fromkeys(pooled.study):
        mine = pooled.study == name
        try:
            part = split_by_sample(
                cells.samples[mine],
                label_names(cells.y[mine]),
                val_fraction=params.split.val_fraction,
                test_fraction=params.split.test_fraction,
                seed=params.split.seed,
            )
        except DataValidationError as exc:
            raise DataValidationError(
                f"cross_study: study {name} cannot be split into train/validation by sample ({exc})"
            ) from exc
        split[mine] = np.where(part == "test", "train", part)  # no test split: the held-out study is the test
    return split.astype(str)


# -------------------------------------------------------------- held-out partition
@dataclass(frozen=True)
class TargetPartition:
    """The held-out study's labelled pool (nested per k), its fixed test samples and the pool's val mask.

    The val mask is per cell.
    """

    pool: dict[int, list[str]]  # k -> samples labelled at that k
    test_samples: list[str]
    per_class: bool  # True: k samples of each class; False: k samples holding both classes
    val_cell: np.ndarray  # per cell of the study: validation cell if its sample is in the pool

    def split_for(self, samples: np.ndarray, k: int) -> np.ndarray:
        """Per cell: ``train``/``val`` (pool of k), ``test`` (test samples), ``""`` (unused pool samples)."""
        split = partition_split(samples, self.pool[k], self.val_cell).astype(object)
        split[np.isin(samples, self.test_samples)] = "test"
        return split.astype(str)


def partition_target(
    study: LabelledDataset, ks: Sequence[int], val_fraction: float, *, seed: int
) -> TargetPartition:
    """Pick the labelled pool and the test samples.

    The pool holds ``max(ks)`` samples per class, or overall when samples are mixed.
    """
    samples, y = study.cells.samples, study.cells.y
    names = np.unique(samples)
    fraction = np.array([y[samples == s].mean() for s in names])
    per_class = not bool(np.all(np.minimum(fraction, 1 - fraction) >= MIXED_SAMPLE_MINORITY))
    rng = np.random.default_rng([seed, 11])
    k_max = max(ks)
    if per_class:
        groups = {"positive": names[fraction >= 0.5], "negative": names[fraction < 0.5]}
        orders = {label: list(rng.permutation(members)) for label, members in groups.items()}
        short = {label: len(order) for label, order in orders.items() if len(order) < k_max + 1}
        if short:
            raise DataValidationError(
                f"cross_study: {study.name} has "
                f"{', '.join(f'{n} {label}-majority' for label, n in short.items())} samples; "
                f"k up to {k_max} per class plus 1 test sample per class needs {k_max + 1} of each "
                "(lower cross_study.k_samples)"
            )
        pool = {k: sorted(str(s) for order in orders.values() for s in order[:k]) for k in ks}
        test = sorted(str(s) for order in orders.values() for s in order[k_max:])
    else:
        order = list(rng.permutation(names))
        if len(order) < k_max + 1:
            raise DataValidationError(
                f"cross_study: {study.name} has {len(order)} samples; "
                f"k up to {k_max} plus 1 test sample needs {k_max + 1} "
                "(lower cross_study.k_samples)"
            )
        pool = {k: sorted(str(s) for s in order[:k]) for k in ks}
        test = sorted(str(s) for s in order[k_max:])
    test_y = y[np.isin(samples, test)]
    if len(np.unique(test_y)) < 2:
        raise DataValidationError(
            f"cross_study: the test samples of {study.name} ({', '.join(test)}) hold one class only"
        )
    # Validation cells of the pool: per sample and class, a seeded share of the cells (nested across k).
    val_cell = np.zeros(study.n_cells, dtype=bool)
    for sample in pool[k_max]:
        for label in (0, 1):
            members = np.flatnonzero((samples == sample) & (y == label))
            n_val = int(round(val_fraction * members.size))
            if members.size >= 2:
                val_cell[rng.choice(members, size=max(1, n_val), replace=False)] = True
    for k in ks:
        for part in ("train", "val"):
            part_y = y[partition_split(samples, pool[k], val_cell) == part]
            if len(np.unique(part_y)) < 2:
                raise DataValidationError(
                    f"cross_study: the {part} cells of {study.name}'s {k} labelled sample(s) "
                    f"({', '.join(pool[k])}) "
                    "hold one class only; raise cross_study.max_cells_per_sample or cross_study.k_samples"
                )
    return TargetPartition(pool=pool, test_samples=test, per_class=per_class, val_cell=val_cell)


def partition_split(samples: np.ndarray, pool: Sequence[str], val_cell: np.ndarray) -> np.ndarray:
    in_pool = np.isin(samples, list(pool))
    return np.where(in_pool & val_cell, "val", np.where(in_pool, "train", ""))


# ----------------------------------------------------------------------- overlap sweep
def thin_genes(
    counts: np.ndarray, present: np.ndarray, fraction: float, *, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Keep ``round(fraction * present.sum())`` of the ``present`` columns; NaN the rest.

    The choice is seeded and nested in ``fraction``.

    Returns the thinned copy and the boolean mask of columns still present.
    """
    shared = np.flatnonzero(present)
    order = np.random.default_rng([seed, 23]).permutation(shared)
    kept = np.zeros(present.shape, dtype=bool)
    kept[order[: int(round(fraction * shared.size))]] = True
    out = np.array(counts, dtype=np.float32, copy=True)
    out[:, present & ~kept] = np.nan
    return out, kept


# ------------------------------------------------------------------------- results
@dataclass
class HeldOutResult:
    """Everything measured with one study held out."""

    held_out: str
    sources: list[str]
    source_train_cells: np.ndarray  # pooled cell ids the preprocessor, networks and baseline were fitted on
    source_val_cells: np.ndarray
    overlap: dict[str, Any]
    partition: TargetPartition
    n_test_cells: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    sweep: list[dict[str, Any]] = field(default_factory=list)


def _row(identity: dict[str, Any], y: np.ndarray, p: np.ndarray, *, threshold: float) -> dict[str, Any]:
    """One report row: ``identity`` (held_out, setting, k, model, seed), the reported metrics, its extras."""
    keys = ("held_out", "setting", "k", "model", "seed")
    metrics = classification_metrics(y, p, threshold)
    return (
        {key: identity[key] for key in keys}
        | {m: metrics[m] for m in REPORTED_METRICS}
        | {key: value for key, value in identity.items() if key not in keys}
    )


def _features(pre: CellPreprocessor, cells: Cells) -> Cells:
    """``cells`` with their PCA features (``pre``) as ``X``."""
    return cells.with_X(pre.transform(cells.X))


def _features_fold(name: str, pre: CellPreprocessor, features: dict[str, Cells]) -> Fold:
    """A fold of features only (no raw counts): what the network and the baselines read."""
    return Fold(name=name, genes=pre.genes_, counts={}, preprocessor=pre, features=features)


def _network_params(params: Params) -> Params:
    c = params.cross_study
    return replace(params, train=replace(params.train, max_epochs=c.max_epochs, patience=c.patience))


def _seeds(params: Params) -> list[int]:
    return [params.train.seed + i for i in range(params.cross_study.n_seeds)]


def gene_overlap(cells: TargetCells) -> dict[str, Any]:
    """How much of the source model's gene space the held-out study provides."""
    match = cells.match
    return {
        "model_genes": match.n_model_genes,
        "model_genes_present": match.n_matched,
        "model_fraction": match.fraction,
        "selected_genes": match.n_selected,
        "selected_present": match.n_selected_matched,
        "selected_fraction": match.selected_fraction,
    }


# ----------------------------------------------------------------------- one held-out study
@dataclass(frozen=True)
class SourceData:
    """The other studies pooled and split by sample into train / val, and the preprocessor fitted on train."""

    train: PooledCells
    val: PooledCells
    genes: np.ndarray  # the union of the source studies' genes
    preprocessor: CellPreprocessor


def fit_source_preprocessor(sources: Sequence[LabelledDataset], params: Params) -> SourceData:
    """Step 1: pool the source studies, split them by sample, fit the preprocessor on their training cells."""
    pooled = pool_studies(sources)
    split = source_split(pooled, params)
    train, val = pooled.subset(split == "train"), pooled.subset(split == "val")
    pre = build_preprocessor(params.preprocess).fit(train.cells.X, pooled.cells.genes)
    return SourceData(train=train, val=val, genes=pooled.cells.genes, preprocessor=pre)


@dataclass(frozen=True)
class HeldOutSetup:
    """What every model of one held-out study is fitted with and scored on."""

    target: LabelledDataset
    cells: TargetCells  # the whole held-out study over the source model's genes
    test: TargetCells  # its fixed test samples
    partition: TargetPartition
    source: SourceData
    source_fold: Fold  # features: source train / val, held-out test
    params: Params

    def labelled(self, k: int) -> dict[str, int]:
        """The size of the labelled pool at ``k``, reported with every fine-tuned and target-only row."""
        pool = self.partition.pool[k]
        return {
            "labelled_samples": len(pool),
            "labelled_cells": int(np.isin(self.target.cells.samples, pool).sum()),
        }

    def row(self, p: np.ndarray, **identity: Any) -> dict[str, Any]:
        """The report row of probabilities ``p`` on the held-out test cells (``identity``: setting, k...)."""
        return _row(
            {"held_out": self.target.name} | identity,
            self.test.cells.y,
            p,
            threshold=self.params.evaluate.threshold,
        )


def prepare_held_out(studies: Sequence[LabelledDataset], index: int, params: Params) -> HeldOutSetup:
    """Steps 1 and 2: source preprocessor, the held-out study on its genes, its pool and test set."""
    config = params.cross_study
    target = studies[index]
    source = fit_source_preprocessor([s for i, s in enumerate(studies) if i != index], params)
    pre = source.preprocessor
    cells = map_to_model(target.cells, pre.genes_, pre.genes_[pre.selected_], source=target.name)
    partition = partition_target(target, config.k_samples, config.pool_val_fraction, seed=config.seed)
    test = cells.subset(np.isin(target.cells.samples, partition.test_samples))
    source_fold = _features_fold(
        f"without-{target.name}",
        pre,
        {
            "train": _features(pre, source.train.cells),
            "val": _features(pre, source.val.cells),
            "test": _features(pre, test.cells),
        },
    )
    return HeldOutSetup(
        target=target,
        cells=cells,
        test=test,
        partition=partition,
        source=source,
        source_fold=source_fold,
        params=params,
    )


@dataclass
class _PerK:
    """What the network loop leaves for the baselines: per k, the re-scaled preprocessor, the own fold."""

    tuned_scaling: dict[int, CellPreprocessor] = field(default_factory=dict)
    target_folds: dict[int, Fold] = field(default_factory=dict)


def _target_fold(setup: HeldOutSetup, k: int, per_k: _PerK) -> Fold:
    """The held-out study's own fold at ``k`` (own genes and preprocessor), built once for all seeds."""
    if k not in per_k.target_folds:
        k_split = setup.partition.split_for(setup.target.cells.samples, k)
        used = k_split != ""
        per_k.target_folds[k] = build_fold(
            f"{setup.target.name}-k{k}",
            setup.target.cells.subset(used),
            k_split[used],
            config=setup.params.preprocess,
        )
    return per_k.target_folds[k]


def network_rows(setup: HeldOutSetup, seed: int, per_k: _PerK) -> tuple[Any, list[dict[str, Any]]]:
    """Step 3 for the network of one seed: zero-shot, then fine-tuned and target-only at every k."""
    params, config = setup.params, setup.params.cross_study
    net_params = _network_params(params)
    architecture = params.train.architecture
    network = make_candidate(architecture, net_params, seed).fit(setup.source_fold)
    rows = [
        setup.row(
            network.predict_proba(setup.source_fold), setting="zero_shot", k=0, model="network", seed=seed
        )
    ]
    parent = TrainableModel(
        setup.source.preprocessor, network.model_, source=f"cross_study source without {setup.target.name}"
    )
    tune = fine_tune_config(
        net_params.train,
        learning_rate=config.fine_tune_learning_rate,
        max_epochs=config.max_epochs,
        patience=config.patience,
        seed=seed,
    )
    for k in config.k_samples:
        k_split = setup.partition.split_for(setup.target.cells.samples, k)
        used = k_split != ""
        adapted = adapt(
            parent,
            setup.cells.subset(used),
            k_split[used],
            config=tune,
            mode=config.fine_tune_mode,
            refit_scaling=config.refit_scaling,
            threshold=params.evaluate.threshold,
        )
        rows.append(
            setup.row(
                adapted.fine_tuned_probability,
                setting="fine_tuned",
                k=k,
                model="network",
                seed=seed,
                **setup.labelled(k),
            )
        )
        per_k.tuned_scaling[k] = (
            adapted.preprocessor
        )  # depends on the pool's training cells only, not the seed
        own_fold = _target_fold(setup, k, per_k)
        own = make_candidate(architecture, net_params, seed).fit(own_fold)
        rows.append(
            setup.row(
                own.predict_proba(own_fold),
                setting="target_only",
                k=k,
                model="network",
                seed=seed,
                **setup.labelled(k),
            )
        )
    return network, rows


def baseline_rows(setup: HeldOutSetup, k: int, per_k: _PerK) -> list[dict[str, Any]]:
    """Step 3 for the baseline at ``k`` (it does not depend on the seed): fine-tuned and target-only."""
    params, config = setup.params, setup.params.cross_study
    k_split = setup.partition.split_for(setup.target.cells.samples, k)
    scaling = per_k.tuned_scaling[k]
    part = {name: setup.cells.cells.subset(k_split == name) for name in ("train", "val")}
    joint = _features_fold(
        f"without-{setup.target.name}+k{k}",
        scaling,
        {
            "train": Cells.concat([setup.source_fold.features["train"], _features(scaling, part["train"])]),
            "val": _features(scaling, part["val"]),
            "test": _features(scaling, setup.test.cells),
        },
    )
    refit = make_candidate(config.baseline, params, params.train.seed).fit(joint)
    own = make_candidate(config.baseline, params, params.train.seed).fit(per_k.target_folds[k])
    identity = {"k": k, "model": "baseline", "seed": None} | setup.labelled(k)
    return [
        setup.row(refit.predict_proba(joint), setting="fine_tuned", **identity),
        setup.row(own.predict_proba(per_k.target_folds[k]), setting="target_only", **identity),
    ]


def hold_out(studies: Sequence[LabelledDataset], index: int, params: Params) -> HeldOutResult:
    """Train on every study but ``studies[index]``; zero-shot, fine-tuned, target-only and the sweep on it."""
    config = params.cross_study
    started = time.perf_counter()
    setup = prepare_held_out(studies, index, params)
    target, source = setup.target, setup.source
    result = HeldOutResult(
        held_out=target.name,
        sources=[s.name for i, s in enumerate(studies) if i != index],
        source_train_cells=source.train.cells.cell_ids,
        source_val_cells=source.val.cells.cell_ids,
        overlap=gene_overlap(setup.cells),
        partition=setup.partition,
        n_test_cells=setup.test.cells.n_cells,
    )
    logger.info(
        "held out %s: source %s (%d training, %d validation cells over %d genes); %s; "
        "test samples %s (%d cells)",
        target.name,
        "+".join(result.sources),
        source.train.cells.n_cells,
        source.val.cells.n_cells,
        source.genes.size,
        setup.cells.match.describe(),
        ", ".join(setup.partition.test_samples),
        result.n_test_cells,
    )
    baseline = make_candidate(config.baseline, params, params.train.seed).fit(setup.source_fold)
    result.rows.append(
        setup.row(
            baseline.predict_proba(setup.source_fold), setting="zero_shot", k=0, model="baseline", seed=None
        )
    )
    per_k, networks = _PerK(), {}
    for seed in _seeds(params):
        networks[seed], rows = network_rows(setup, seed, per_k)
        result.rows.extend(rows)
    for k in config.k_samples:
        result.rows.extend(baseline_rows(setup, k, per_k))
    if target.name == config.sweep_dataset:
        result.sweep = overlap_sweep(setup, networks=networks, baseline=baseline)
    logger.info("held out %s: done in %.0f s", target.name, time.perf_counter() - started)
    return result


# ----------------------------------------------------------------------- overlap sweep
def _thin_in_domain(
    source_val: PooledCells, selected: np.ndarray, *, fraction: float, seed: int
) -> tuple[np.ndarray, float]:
    """Source validation cells, each study's own genes thinned to ``fraction``; mean selected share kept."""
    counts = source_val.cells.X
    domain = np.array(counts, copy=True)
    domain_selected = np.zeros(source_val.cells.n_cells)
    for study in dict.fromkeys(source_val.study):
        mine = source_val.study == study
        present = ~np.isnan(counts[mine]).all(axis=0)
        domain[mine], study_kept = thin_genes(counts[mine], present, fraction, seed=seed)
        domain_selected[mine] = (study_kept & selected).sum() / selected.sum()
    return domain, float(domain_selected.mean())


def _sweep_fold(pre: CellPreprocessor, counts: np.ndarray, y: np.ndarray) -> Fold:
    """Thinned counts as a test-only fold (cells need no ids or samples here)."""
    features = Cells(
        X=pre.transform(counts),
        y=y,
        cell_ids=np.arange(len(y)).astype(str),
        samples=np.zeros(len(y)).astype(str),
    )
    return _features_fold("sweep", pre, {"test": features})


def overlap_sweep(setup: HeldOutSetup, *, networks: dict[int, Any], baseline: Any) -> list[dict[str, Any]]:
    """Zero-shot figures as genes are removed: held-out test cells and source validation cells (in domain)."""
    config, threshold = setup.params.cross_study, setup.params.evaluate.threshold
    pre, test, source_val = setup.source.preprocessor, setup.test, setup.source.val
    selected = np.zeros(pre.genes_.size, dtype=bool)
    selected[pre.selected_] = True
    rows = []
    for fraction in config.overlap_fractions:
        thinned, kept = thin_genes(test.cells.X, test.match.present, fraction, seed=config.seed)
        # In domain: each source study's own genes thinned the same way.
        domain, domain_fraction = _thin_in_domain(source_val, selected, fraction=fraction, seed=config.seed)
        scopes = {
            "held_out": (
                thinned,
                test.cells.y,
                {
                    "genes_present": int(kept.sum()),
                    "selected_present": int((kept & selected).sum()),
                    "selected_fraction": float((kept & selected).sum() / selected.sum()),
                },
            ),
            "in_domain": (domain, source_val.cells.y, {"selected_fraction": domain_fraction}),
        }
        for scope, (counts, y, facts) in scopes.items():
            fold = _sweep_fold(pre, counts, y)
            common = {"fraction_kept": float(fraction), "scope": scope} | facts
            sweep = {"held_out": setup.target.name, "setting": "sweep", "k": 0}
            rows.append(
                _row(
                    sweep | {"model": "baseline", "seed": None} | common,
                    y,
                    baseline.predict_proba(fold),
                    threshold=threshold,
                )
            )
            for seed_, network in networks.items():
                rows.append(
                    _row(
                        sweep | {"model": "network", "seed": seed_} | common,
                        y,
                        network.predict_proba(fold),
                        threshold=threshold,
                    )
                )
    return rows


def run_cross_study(studies: Sequence[LabelledDataset], params: Params) -> list[HeldOutResult]:
    """Hold out every study in turn."""
    if len(studies) < 2:
        raise DataValidationError("cross_study: at least 2 studies are needed (each is held out in turn)")
    return [hold_out(studies, i, params) for i in range(len(studies))]
