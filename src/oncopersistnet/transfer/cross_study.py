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

from oncopersistnet import NON_PERSISTER, PERSISTER
from oncopersistnet.config import Params
from oncopersistnet.errors import DataValidationError
from oncopersistnet.evaluation.candidates import make_candidate
from oncopersistnet.evaluation.folds import Fold, build_fold
from oncopersistnet.evaluation.metrics import classification_metrics
from oncopersistnet.preprocessing import CellPreprocessor, FeatureSet, build_preprocessor
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
    """Several studies over the union of their genes; NaN where a study lacks a gene."""

    counts: np.ndarray  # float32, cells x genes
    genes: np.ndarray
    y: np.ndarray
    samples: np.ndarray  # "<study>:<sample>"
    cell_ids: np.ndarray  # "<study>:<cell>"
    study: np.ndarray  # study name of every cell

    def rows(self, mask: np.ndarray) -> PooledCells:
        return PooledCells(
            self.counts[mask],
            self.genes,
            self.y[mask],
            self.samples[mask],
            self.cell_ids[mask],
            self.study[mask],
        )


def pool_studies(studies: Sequence[LabelledDataset]) -> PooledCells:
    """Stack ``studies`` over the union of their genes (first-seen order); absent genes are NaN."""
    genes = list(dict.fromkeys(g for s in studies for g in s.genes))
    position = {g: j for j, g in enumerate(genes)}
    blocks = []
    for study in studies:
        block = np.full((study.n_cells, len(genes)), np.nan, dtype=np.float32)
        block[:, [position[g] for g in study.genes]] = study.counts.toarray()
        blocks.append(block)
    return PooledCells(
        counts=np.vstack(blocks),
        genes=np.asarray(genes, dtype=str),
        y=np.concatenate([s.y for s in studies]),
        samples=np.concatenate([np.char.add(f"{s.name}:", s.samples.astype(str)) for s in studies]),
        cell_ids=np.concatenate([np.char.add(f"{s.name}:", s.cell_ids.astype(str)) for s in studies]),
        study=np.concatenate([np.full(s.n_cells, s.name) for s in studies]),
    )


def _label_names(y: np.ndarray) -> np.ndarray:
    return np.where(np.asarray(y) == 1, PERSISTER, NON_PERSISTER)


def source_split(pooled: PooledCells, params: Params) -> np.ndarray:
    """``train`` / ``val`` per pooled cell, by sample within each study (each study gives validation samples)."""
    split = np.empty(len(pooled.y), dtype=object)
    for name in dict.fromkeys(pooled.study):
        mine = pooled.study == name
        try:
            part = split_by_sample(
                pooled.samples[mine],
                _label_names(pooled.y[mine]),
                params.split.val_fraction,
                params.split.test_fraction,
                params.split.seed,
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
    """The held-out study's labelled pool (nested per k), its fixed test samples and the pool's cell-level val mask."""

    pool: dict[int, list[str]]  # k -> samples labelled at that k
    test_samples: list[str]
    per_class: bool  # True: k samples of each class; False: k samples holding both classes
    val_cell: np.ndarray  # per cell of the study: validation cell if its sample is in the pool

    def split_for(self, samples: np.ndarray, k: int) -> np.ndarray:
        """Per cell: ``train`` / ``val`` (pool of k), ``test`` (test samples) or ``""`` (unused pool samples)."""
        split = partition_split(samples, self.pool[k], self.val_cell).astype(object)
        split[np.isin(samples, self.test_samples)] = "test"
        return split.astype(str)


def partition_target(
    study: LabelledDataset, ks: Sequence[int], val_fraction: float, seed: int
) -> TargetPartition:
    """Pick the labelled pool (``max(ks)`` samples per class, or overall when samples are mixed) and the test samples."""
    names = np.unique(study.samples)
    fraction = np.array([study.y[study.samples == s].mean() for s in names])
    per_class = not bool(np.all(np.minimum(fraction, 1 - fraction) >= MIXED_SAMPLE_MINORITY))
    rng = np.random.default_rng([seed, 11])
    k_max = max(ks)
    if per_class:
        groups = {"positive": names[fraction >= 0.5], "negative": names[fraction < 0.5]}
        orders = {label: list(rng.permutation(members)) for label, members in groups.items()}
        short = {label: len(order) for label, order in orders.items() if len(order) < k_max + 1}
        if short:
            raise DataValidationError(
                f"cross_study: {study.name} has {', '.join(f'{n} {label}-majority' for label, n in short.items())} samples; "
                f"k up to {k_max} per class plus 1 test sample per class needs {k_max + 1} of each (lower cross_study.k_samples)"
            )
        pool = {k: sorted(str(s) for order in orders.values() for s in order[:k]) for k in ks}
        test = sorted(str(s) for order in orders.values() for s in order[k_max:])
    else:
        order = list(rng.permutation(names))
        if len(order) < k_max + 1:
            raise DataValidationError(
                f"cross_study: {study.name} has {len(order)} samples; k up to {k_max} plus 1 test sample needs {k_max + 1} "
                "(lower cross_study.k_samples)"
            )
        pool = {k: sorted(str(s) for s in order[:k]) for k in ks}
        test = sorted(str(s) for s in order[k_max:])
    test_y = study.y[np.isin(study.samples, test)]
    if len(np.unique(test_y)) < 2:
        raise DataValidationError(
            f"cross_study: the test samples of {study.name} ({', '.join(test)}) hold one class only"
        )
    # Validation cells of the pool: per sample and class, a seeded share of the cells (nested across k).
    val_cell = np.zeros(study.n_cells, dtype=bool)
    for sample in pool[k_max]:
        for label in (0, 1):
            members = np.flatnonzero((study.samples == sample) & (study.y == label))
            n_val = int(round(val_fraction * members.size))
            if members.size >= 2:
                val_cell[rng.choice(members, size=max(1, n_val), replace=False)] = True
    for k in ks:
        for part in ("train", "val"):
            y = study.y[partition_split(study.samples, pool[k], val_cell) == part]
            if len(np.unique(y)) < 2:
                raise DataValidationError(
                    f"cross_study: the {part} cells of {study.name}'s {k} labelled sample(s) ({', '.join(pool[k])}) "
                    "hold one class only; raise cross_study.max_cells_per_sample or cross_study.k_samples"
                )
    return TargetPartition(pool=pool, test_samples=test, per_class=per_class, val_cell=val_cell)


def partition_split(samples: np.ndarray, pool: Sequence[str], val_cell: np.ndarray) -> np.ndarray:
    in_pool = np.isin(samples, list(pool))
    return np.where(in_pool & val_cell, "val", np.where(in_pool, "train", ""))


# ----------------------------------------------------------------------- overlap sweep
def thin_genes(
    counts: np.ndarray, present: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Keep ``round(fraction * present.sum())`` of the ``present`` columns (seeded, nested in ``fraction``); NaN the rest.

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


def _row(
    held_out: str,
    setting: str,
    k: int,
    model: str,
    seed: int | None,
    y: np.ndarray,
    p: np.ndarray,
    threshold: float,
    **extra: Any,
) -> dict[str, Any]:
    metrics = classification_metrics(y, p, threshold)
    return (
        {"held_out": held_out, "setting": setting, "k": k, "model": model, "seed": seed}
        | {m: metrics[m] for m in REPORTED_METRICS}
        | extra
    )


def _features(
    pre: CellPreprocessor, counts: np.ndarray, y: np.ndarray, ids: np.ndarray, samples: np.ndarray
) -> FeatureSet:
    return FeatureSet(pre.transform(counts), np.asarray(y), np.asarray(ids), np.asarray(samples))


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


def hold_out(studies: Sequence[LabelledDataset], index: int, params: Params) -> HeldOutResult:
    """Train on every study but ``studies[index]``; measure zero-shot, fine-tuned, target-only and the sweep on it."""
    config = params.cross_study
    target = studies[index]
    sources = [s for i, s in enumerate(studies) if i != index]
    threshold = params.evaluate.threshold
    net_params = _network_params(params)
    architecture = params.train.architecture
    started = time.perf_counter()

    # 1. Source model on the pooled other studies.
    pooled = pool_studies(sources)
    split = source_split(pooled, params)
    train, val = pooled.rows(split == "train"), pooled.rows(split == "val")
    pre = build_preprocessor(params.preprocess).fit(train.counts, pooled.genes)
    selected = pre.genes_[pre.selected_]
    cells = map_to_model(
        target.counts,
        target.genes,
        target.y,
        target.samples,
        target.cell_ids,
        pre.genes_,
        selected,
        target.name,
    )
    overlap = gene_overlap(cells)

    # 2. The held-out study's labelled pool and fixed test set.
    partition = partition_target(target, config.k_samples, config.pool_val_fraction, config.seed)
    is_test = np.isin(target.samples, partition.test_samples)
    test = cells.subset(is_test)
    source_fold = Fold(
        name=f"without-{target.name}",
        genes=pre.genes_,
        counts={},
        preprocessor=pre,
        features={
            "train": _features(pre, train.counts, train.y, train.cell_ids, train.samples),
            "val": _features(pre, val.counts, val.y, val.cell_ids, val.samples),
            "test": _features(pre, test.counts, test.y, test.cell_ids, test.samples),
        },
    )
    result = HeldOutResult(
        held_out=target.name,
        sources=[s.name for s in sources],
        source_train_cells=train.cell_ids,
        source_val_cells=val.cell_ids,
        overlap=overlap,
        partition=partition,
        n_test_cells=int(is_test.sum()),
    )
    logger.info(
        "held out %s: source %s (%d training, %d validation cells over %d genes); %s; test samples %s (%d cells)",
        target.name,
        "+".join(result.sources),
        len(train.y),
        len(val.y),
        pooled.genes.size,
        cells.match.describe(),
        ", ".join(partition.test_samples),
        result.n_test_cells,
    )

    baseline = make_candidate(config.baseline, params, params.train.seed).fit(source_fold)
    result.rows.append(
        _row(
            target.name,
            "zero_shot",
            0,
            "baseline",
            None,
            test.y,
            baseline.predict_proba(source_fold),
            threshold,
        )
    )

    # Target-only folds (the study's own genes and preprocessor), one per k; refitted scalings per k.
    target_folds: dict[int, Fold] = {}
    tuned_scaling: dict[int, CellPreprocessor] = {}
    networks = {}
    for seed in _seeds(params):
        network = make_candidate(architecture, net_params, seed).fit(source_fold)
        networks[seed] = network
        result.rows.append(
            _row(
                target.name,
                "zero_shot",
                0,
                "network",
                seed,
                test.y,
                network.predict_proba(source_fold),
                threshold,
            )
        )
        parent = TrainableModel(pre, network.model_, source=f"cross_study source without {target.name}")
        tune = fine_tune_config(
            net_params.train, config.fine_tune_learning_rate, config.max_epochs, config.patience, seed
        )
        for k in config.k_samples:
            k_split = partition.split_for(target.samples, k)
            used = k_split != ""
            extra = {
                "labelled_samples": len(partition.pool[k]),
                "labelled_cells": int(np.isin(target.samples, partition.pool[k]).sum()),
            }
            adapted = adapt(
                parent,
                cells.subset(used),
                k_split[used],
                tune,
                config.fine_tune_mode,
                config.refit_scaling,
                threshold,
            )
            result.rows.append(
                _row(
                    target.name,
                    "fine_tuned",
                    k,
                    "network",
                    seed,
                    test.y,
                    adapted.fine_tuned_probability,
                    threshold,
                    **extra,
                )
            )
            tuned_scaling[k] = (
                adapted.preprocessor
            )  # depends on the pool's training cells only, not on the seed
            if k not in target_folds:
                target_folds[k] = build_fold(
                    f"{target.name}-k{k}",
                    target.counts[used],
                    target.genes,
                    target.y[used],
                    target.cell_ids[used],
                    target.samples[used],
                    k_split[used],
                    params.preprocess,
                )
            own = make_candidate(architecture, net_params, seed).fit(target_folds[k])
            result.rows.append(
                _row(
                    target.name,
                    "target_only",
                    k,
                    "network",
                    seed,
                    test.y,
                    own.predict_proba(target_folds[k]),
                    threshold,
                    **extra,
                )
            )

    # Baselines do not depend on the seed: once per k.
    for k in config.k_samples:
        k_split = partition.split_for(target.samples, k)
        extra = {
            "labelled_samples": len(partition.pool[k]),
            "labelled_cells": int(np.isin(target.samples, partition.pool[k]).sum()),
        }
        scaling = tuned_scaling[k]
        part = {name: cells.subset(k_split == name) for name in ("train", "val")}
        target_train = _features(
            scaling, part["train"].counts, part["train"].y, part["train"].cell_ids, part["train"].samples
        )
        src = source_fold.features["train"]
        joint = Fold(
            name=f"without-{target.name}+k{k}",
            genes=pre.genes_,
            counts={},
            preprocessor=scaling,
            features={
                "train": FeatureSet(
                    np.vstack([src.X, target_train.X]),
                    np.concatenate([src.y, target_train.y]),
                    np.concatenate([src.cell_ids, target_train.cell_ids]),
                    np.concatenate([src.samples, target_train.samples]),
                ),
                "val": _features(
                    scaling, part["val"].counts, part["val"].y, part["val"].cell_ids, part["val"].samples
                ),
                "test": _features(scaling, test.counts, test.y, test.cell_ids, test.samples),
            },
        )
        refit = make_candidate(config.baseline, params, params.train.seed).fit(joint)
        result.rows.append(
            _row(
                target.name,
                "fine_tuned",
                k,
                "baseline",
                None,
                test.y,
                refit.predict_proba(joint),
                threshold,
                **extra,
            )
        )
        own = make_candidate(config.baseline, params, params.train.seed).fit(target_folds[k])
        result.rows.append(
            _row(
                target.name,
                "target_only",
                k,
                "baseline",
                None,
                test.y,
                own.predict_proba(target_folds[k]),
                threshold,
                **extra,
            )
        )

    if target.name == config.sweep_dataset:
        result.sweep = overlap_sweep(
            target.name, test, val, pre, networks, baseline, config.overlap_fractions, config.seed, threshold
        )
    logger.info("held out %s: done in %.0f s", target.name, time.perf_counter() - started)
    return result


def overlap_sweep(
    name: str,
    test: TargetCells,
    source_val: PooledCells,
    pre: CellPreprocessor,
    networks: dict[int, Any],
    baseline: Any,
    fractions: Sequence[float],
    seed: int,
    threshold: float,
) -> list[dict[str, Any]]:
    """Zero-shot ROC-AUC etc. as genes are removed: held-out test cells, and the source validation cells (in domain)."""
    selected = np.zeros(pre.genes_.size, dtype=bool)
    selected[pre.selected_] = True
    rows = []
    for fraction in fractions:
        thinned, kept = thin_genes(test.counts, test.match.present, fraction, seed)
        # In domain: each source study's own genes thinned the same way.
        domain = np.array(source_val.counts, copy=True)
        domain_selected = np.zeros(len(source_val.y))
        for study in dict.fromkeys(source_val.study):
            mine = source_val.study == study
            present = ~np.isnan(source_val.counts[mine]).all(axis=0)
            domain[mine], study_kept = thin_genes(source_val.counts[mine], present, fraction, seed)
            domain_selected[mine] = (study_kept & selected).sum() / selected.sum()
        scopes = {
            "held_out": (
                thinned,
                test.y,
                {
                    "genes_present": int(kept.sum()),
                    "selected_present": int((kept & selected).sum()),
                    "selected_fraction": float((kept & selected).sum() / selected.sum()),
                },
            ),
            "in_domain": (domain, source_val.y, {"selected_fraction": float(domain_selected.mean())}),
        }
        for scope, (counts, y, facts) in scopes.items():
            features = pre.transform(counts)
            fold = Fold(
                name="sweep",
                genes=pre.genes_,
                counts={},
                preprocessor=pre,
                features={
                    "test": FeatureSet(
                        features, y, np.arange(len(y)).astype(str), np.zeros(len(y)).astype(str)
                    )
                },
            )
            common = {"fraction_kept": float(fraction), "scope": scope} | facts
            rows.append(
                _row(name, "sweep", 0, "baseline", None, y, baseline.predict_proba(fold), threshold, **common)
            )
            for seed_, network in networks.items():
                rows.append(
                    _row(
                        name,
                        "sweep",
                        0,
                        "network",
                        seed_,
                        y,
                        network.predict_proba(fold),
                        threshold,
                        **common,
                    )
                )
    return rows


def run_cross_study(studies: Sequence[LabelledDataset], params: Params) -> list[HeldOutResult]:
    """Hold out every study in turn."""
    if len(studies) < 2:
        raise DataValidationError("cross_study: at least 2 studies are needed (each is held out in turn)")
    return [hold_out(studies, i, params) for i in range(len(studies))]
