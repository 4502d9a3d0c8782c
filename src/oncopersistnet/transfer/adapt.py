"""Adapt a trained model to an independent labelled dataset: zero-shot, then fine-tuned.

The model's inputs are fixed: raw counts over its training genes. A new study
brings its own gene panel, depth and batch effects, so the new cells are mapped
onto the model's genes (names harmonised; a gene the study lacks is NaN and gets
the training mean, exactly as the exported graph imputes it) and split by sample
(never by cell) into train / validation / test. Then:

* **zero-shot**: the model as it is, on the new test samples;
* **fine-tuned**: optionally the scaling statistics refitted on the new training
  cells (:meth:`CellPreprocessor.refit_scaling`: imputation means, min-max range,
  PCA centre; the selected genes and PCA axes stay), then either the dense head
  retrained on frozen convolutional/recurrent layers (``mode="head"``) or every
  weight trained from the old ones at a lower learning rate (``mode="all"``),
  with early stopping and calibration on the new validation samples.

Both are scored on the same new test cells, so the gain from fine-tuning is
measured, not assumed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from oncopersistnet.choices import FINE_TUNE_MODES
from oncopersistnet.config import TrainConfig
from oncopersistnet.data.cells import Cells
from oncopersistnet.errors import ConfigError, InputDataError
from oncopersistnet.evaluation.metrics import classification_metrics
from oncopersistnet.inference.align import GeneMatch, aligned_block, match_genes
from oncopersistnet.model import PersisterNetwork, predict_proba, train_model
from oncopersistnet.preprocessing import SPLITS, CellPreprocessor
from oncopersistnet.registry.trainable import TrainableModel

logger = logging.getLogger(__name__)

MODES = FINE_TUNE_MODES
# Below this share of the genes the model reads, `predict` refuses an input by default
# (predict.min_gene_fraction); transfer still measures it, and says so.
LOW_OVERLAP = 0.5
LOW_OVERLAP_NOTE = "; most of what the model reads is imputed, so expect little to transfer"
# What "head" fine-tuning keeps fixed: the feature extractor (convolutions and LSTM).
# Everything after it trains: the dense head, and attention pooling where there is one.
FROZEN_IN_HEAD_MODE = ("conv", "lstm")


def head_modules(network: PersisterNetwork) -> tuple[str, ...]:
    """Names of the submodules ``mode="head"`` trains: all but the convolutional and recurrent layers."""
    names = [name for name, _ in network.named_children()]
    if not set(FROZEN_IN_HEAD_MODE) & set(names):
        raise ConfigError(
            "transfer.mode: head fine-tuning freezes convolutional/recurrent layers, "
            f"which a {network.architecture} network does not have; use mode: all"
        )
    return tuple(name for name in names if name not in FROZEN_IN_HEAD_MODE)


@dataclass(frozen=True)
class TargetCells:
    """A new labelled dataset mapped onto a model's genes: ``cells.X`` dense float32, NaN = gene absent."""

    cells: Cells
    match: GeneMatch

    def subset(self, mask: np.ndarray) -> TargetCells:
        return replace(self, cells=self.cells.subset(mask))


def map_to_model(
    study: Cells, model_genes: np.ndarray, selected_genes: np.ndarray, *, source: str
) -> TargetCells:
    """Harmonise the study's gene names and lay its counts over the model's genes."""
    match = match_genes(
        study.genes, model_genes, min_fraction=0.0, source=source, selected_genes=selected_genes
    )
    if match.n_selected_matched == 0:
        raise InputDataError(
            f"{source}: shares none of the {match.n_selected} genes the model reads ({match.describe()}); "
            "every input would be imputed constants, so there is nothing to transfer"
        )
    log = logger.warning if match.selected_fraction < LOW_OVERLAP else logger.info
    log(
        "%s: %s%s",
        source,
        match.describe(),
        LOW_OVERLAP_NOTE if match.selected_fraction < LOW_OVERLAP else "",
    )
    return TargetCells(study.with_X(aligned_block(study.X, match), model_genes), match)


@dataclass
class Adapted:
    """The fine-tuned model, its training record and both sets of test figures."""

    preprocessor: CellPreprocessor
    network: PersisterNetwork
    best_epoch: int
    history: list[dict[str, float]]
    zero_shot: dict[str, float]
    fine_tuned: dict[str, float]
    zero_shot_probability: np.ndarray
    fine_tuned_probability: np.ndarray


def fine_tune_config(
    base: TrainConfig, *, learning_rate: float, max_epochs: int, patience: int, seed: int
) -> TrainConfig:
    """The parent's training settings with the fine-tuning schedule."""
    return replace(base, learning_rate=learning_rate, max_epochs=max_epochs, patience=patience, seed=seed)


def adapt(
    parent: TrainableModel,
    cells: TargetCells,
    split: np.ndarray,
    *,
    config: TrainConfig,
    mode: str = "head",
    refit_scaling: bool = True,
    threshold: float = 0.5,
    progress: bool = False,
) -> Adapted:
    """Score ``parent`` zero-shot on the test split, fine-tune on train/val, score again."""
    if mode not in MODES:
        raise ConfigError(f"transfer.mode: must be one of {', '.join(MODES)}, got {mode!r}")
    parts = {name: cells.cells.subset(split == name) for name in SPLITS}
    test = parts["test"]
    zero_p = predict_proba(parent.network, parent.preprocessor.transform(test.X))
    preprocessor = (
        parent.preprocessor.refit_scaling(parts["train"].X) if refit_scaling else parent.preprocessor
    )
    features = {name: preprocessor.transform(part.X) for name, part in parts.items()}
    result = train_model(
        (features["train"], parts["train"].y),
        (features["val"], parts["val"].y),
        config,
        progress=progress,
        initial=parent.network,
        train_only=head_modules(parent.network) if mode == "head" else None,
    )
    tuned_p = predict_proba(result.model, features["test"])
    zero, tuned = (classification_metrics(test.y, p, threshold) for p in (zero_p, tuned_p))
    logger.info(
        "zero-shot ROC-AUC %.3f F1 %.3f -> fine-tuned (%s%s) ROC-AUC %.3f F1 %.3f on %d test cells",
        zero["roc_auc"],
        zero["f1"],
        mode,
        ", scaling refitted" if refit_scaling else "",
        tuned["roc_auc"],
        tuned["f1"],
        len(test.y),
    )
    return Adapted(
        preprocessor, result.model, result.best_epoch, result.history, zero, tuned, zero_p, tuned_p
    )
