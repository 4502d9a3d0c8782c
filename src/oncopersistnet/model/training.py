"""Seeded training with class weighting and early stopping on the validation split.

Same params, same data -> same weights -> same metrics: seeds are set for Python,
NumPy and torch, torch runs deterministic kernels, and batches are shuffled by a
seeded generator.
"""

from __future__ import annotations

import copy
import io
import logging
import pickle
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import f1_score, roc_auc_score
from torch import nn
from tqdm.auto import tqdm

from oncopersistnet.atomic import write_bytes
from oncopersistnet.config import TrainConfig
from oncopersistnet.errors import ModelError
from oncopersistnet.model.calibration import fit_calibration
from oncopersistnet.model.network import (
    NETWORK_CLASSES,
    CnnLstmAttentionClassifier,
    CnnLstmClassifier,
    MlpClassifier,
    PersisterNetwork,
    mlp_width_for,
)

logger = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainingResult:
    """The best model (by validation loss), calibrated on validation, and the per-epoch history."""

    model: PersisterNetwork
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    """Seed every generator training touches and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _batched(
    model: PersisterNetwork, features: np.ndarray, batch_size: int, *, calibrated: bool
) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(features), batch_size):
            batch = torch.from_numpy(
                np.ascontiguousarray(features[start : start + batch_size], dtype=np.float32)
            )
            out.append((model.calibrated_probability(batch) if calibrated else model(batch)).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def predict_proba(model: PersisterNetwork, features: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Calibrated persister probabilities for a float32 feature matrix (eval mode, no gradients)."""
    return _batched(model, features, batch_size, calibrated=True)


def predict_logits(model: PersisterNetwork, features: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Raw (uncalibrated) logits, for fitting and judging the calibration."""
    return _batched(model, features, batch_size, calibrated=False)


def _sequence_network_args(config: TrainConfig) -> dict[str, Any]:
    """The constructor arguments the CNN-LSTM and its attention variant share."""
    return {
        "conv_channels": config.conv_channels,
        "kernel_size": config.kernel_size,
        "lstm_hidden": config.lstm_hidden,
        "lstm_layers": config.lstm_layers,
        "bidirectional": config.bidirectional,
        "dense_units": config.dense_units,
        "dropout": config.dropout,
    }


def build_network(config: TrainConfig, n_features: int) -> PersisterNetwork:
    """The network ``config.architecture`` names; an MLP is sized to the CNN-LSTM's parameter count.

    The attention variant is built first thing from the seed, like the CNN-LSTM, so
    the layers they share start from the same weights and a comparison of the two
    measures the pooling, not the initialisation.
    """
    if config.architecture == "cnn_lstm_attention":
        return CnnLstmAttentionClassifier(n_features, **_sequence_network_args(config))
    cnn_lstm = CnnLstmClassifier(n_features, **_sequence_network_args(config))
    if config.architecture == "cnn_lstm":
        return cnn_lstm
    if config.architecture == "mlp":
        # Re-seed so the MLP's initial weights do not depend on having built the CNN-LSTM first.
        torch.manual_seed(config.seed)
        return MlpClassifier(n_features, mlp_width_for(cnn_lstm.n_parameters, n_features), config.dropout)
    raise ModelError(
        f"train.architecture: unknown network {config.architecture!r} "
        f"(choose from {', '.join(NETWORK_CLASSES)})"
    )


def _safe_auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def _freeze_all_but(model: PersisterNetwork, train_only: tuple[str, ...] | None) -> list[nn.Module]:
    """Stop gradients to every top-level submodule not named in ``train_only``; return the frozen ones."""
    if train_only is None:
        return []
    children = dict(model.named_children())
    unknown = sorted(set(train_only) - set(children))
    if unknown:
        raise ModelError(
            f"cannot train only {unknown} of a {model.architecture} network; its parts are {sorted(children)}"
        )
    frozen = [module for name, module in children.items() if name not in train_only]
    for module in frozen:
        module.requires_grad_(False)
    return frozen


#: Features (cells x features) and 0/1 persister labels of one split.
LabelledFeatures = tuple[np.ndarray, np.ndarray]


@dataclass
class _Fit:
    """What one training run carries from epoch to epoch."""

    model: PersisterNetwork
    frozen: list[nn.Module]  # submodules whose weights (and BatchNorm statistics) stay as they are
    loss_fn: nn.BCEWithLogitsLoss
    optimiser: torch.optim.Optimizer
    generator: torch.Generator  # shuffles the batches, seeded


def _class_weighted_loss(y_train: np.ndarray, class_weight: str) -> nn.BCEWithLogitsLoss:
    """BCE; with ``balanced`` class weights, persisters weighted by the non-persister / persister
    ratio of the training split (each class then carries half the loss)."""
    n_pos = float(y_train.sum())
    n_neg = float(len(y_train) - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ModelError("train: the training split must contain both persisters and non-persisters")
    if class_weight == "none":
        return nn.BCEWithLogitsLoss()
    return nn.BCEWithLogitsLoss(pos_weight=torch.tensor(n_neg / n_pos))


def _start_fit(
    config: TrainConfig,
    train: LabelledFeatures,
    *,
    initial: PersisterNetwork | None,
    train_only: tuple[str, ...] | None,
) -> _Fit:
    """Seed, build (or copy) the network, freeze what must not move, and set up loss and optimiser.

    The order is the one seeded runs always had: the network's initial weights
    come first from the seed, then the batch generator.
    """
    seed_everything(config.seed)
    X_train, y_train = train
    model = build_network(config, X_train.shape[1]) if initial is None else copy.deepcopy(initial)
    model.set_calibration(1.0, 0.0)
    frozen = _freeze_all_but(model, train_only)
    loss_fn = _class_weighted_loss(y_train, config.class_weight)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    return _Fit(model, frozen, loss_fn, optimiser, generator)


def _as_tensors(split: LabelledFeatures) -> tuple[torch.Tensor, torch.Tensor]:
    X, y = split
    return torch.from_numpy(np.asarray(X, dtype=np.float32)), torch.from_numpy(
        np.asarray(y, dtype=np.float32)
    )


def _train_epoch(fit: _Fit, X_t: torch.Tensor, y_t: torch.Tensor, *, batch_size: int) -> float:
    """One pass over the shuffled training cells; the mean training loss per cell."""
    fit.model.train()
    for module in fit.frozen:
        module.eval()  # frozen BatchNorm keeps its running statistics
    order = torch.randperm(len(X_t), generator=fit.generator)
    total = 0.0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        if len(idx) < 2:  # BatchNorm needs more than one cell per batch
            continue
        fit.optimiser.zero_grad()
        loss = fit.loss_fn(fit.model(X_t[idx]), y_t[idx])
        loss.backward()
        fit.optimiser.step()
        total += loss.item() * len(idx)
    return total / len(X_t)


def _validation_scores(
    fit: _Fit, X_v: torch.Tensor, y_v: torch.Tensor, *, y_val: np.ndarray
) -> dict[str, float]:
    """Validation loss (what early stopping watches), F1 at 0.5 and ROC-AUC of the uncalibrated model."""
    fit.model.eval()
    with torch.no_grad():
        val_logits = fit.model(X_v)
        val_loss = fit.loss_fn(val_logits, y_v).item()
    val_prob = torch.sigmoid(val_logits).numpy()
    return {
        "val_loss": val_loss,
        "val_f1": float(f1_score(y_val, val_prob >= 0.5, zero_division=0)),
        "val_roc_auc": _safe_auc(np.asarray(y_val), val_prob),
    }


@dataclass
class _EarlyStopping:
    """Keeps the weights of the lowest validation loss; says stop after ``patience`` epochs without one."""

    patience: int
    best_loss: float = float("inf")
    best_epoch: int = 0
    best_state: dict[str, Any] | None = None
    stale: int = 0

    def should_stop(self, epoch: int, val_loss: float, model: PersisterNetwork) -> bool:
        if val_loss < self.best_loss - 1e-6:
            self.best_loss, self.best_epoch, self.stale = val_loss, epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())
            return False
        self.stale += 1
        return self.stale >= self.patience


def _keep_best_and_calibrate(
    fit: _Fit, stopping: _EarlyStopping, val: LabelledFeatures, *, config: TrainConfig
) -> None:
    """Restore the best weights, unfreeze for later use, and fit the calibration on validation."""
    if stopping.best_state is None:
        raise ModelError(
            "train: the validation loss was never finite (training diverged); lower train.learning_rate "
            "or check the features for extreme values"
        )
    model = fit.model
    model.load_state_dict(stopping.best_state)
    model.eval()
    for module in fit.frozen:
        module.requires_grad_(True)  # frozen for this training only, not for later use
    X_val, y_val = val
    scale, shift = fit_calibration(predict_logits(model, X_val), np.asarray(y_val), config.calibration)
    model.set_calibration(scale, shift)
    logger.info(
        "best validation loss %.4f at epoch %d; %s calibration on validation: scale %.3f, shift %.3f",
        stopping.best_loss,
        stopping.best_epoch,
        config.calibration,
        scale,
        shift,
    )


def train_model(
    train: LabelledFeatures,
    val: LabelledFeatures,
    config: TrainConfig,
    *,
    on_epoch: EpochCallback | None = None,
    progress: bool = True,
    initial: PersisterNetwork | None = None,
    train_only: tuple[str, ...] | None = None,
) -> TrainingResult:
    """Train the network of ``config.architecture`` on ``train`` (features, labels); keep the weights of
    the best validation loss, then fit the probability calibration (``config.calibration``) on ``val``.

    Fine-tuning passes ``initial``, a trained network to start from (copied, never
    changed in place; its calibration is refitted), and optionally ``train_only``,
    the names of the submodules whose weights may move (``("head",)``: the dense
    head on frozen convolutional and recurrent layers, whose BatchNorm statistics
    stay frozen too).
    """
    fit = _start_fit(config, train, initial=initial, train_only=train_only)
    X_t, y_t = _as_tensors(train)
    X_v, y_v = _as_tensors(val)
    stopping = _EarlyStopping(config.patience)
    history: list[dict[str, float]] = []
    bar = tqdm(range(1, config.max_epochs + 1), desc="training", unit="epoch", disable=not progress)
    for epoch in bar:
        row = {"train_loss": _train_epoch(fit, X_t, y_t, batch_size=config.batch_size)}
        row |= _validation_scores(fit, X_v, y_v, y_val=val[1])
        history.append(row)
        if on_epoch is not None:
            on_epoch(epoch, row)
        bar.set_postfix(train_loss=f"{row['train_loss']:.3f}", val_loss=f"{row['val_loss']:.3f}")
        if stopping.should_stop(epoch, row["val_loss"], fit.model):
            logger.info("early stopping at epoch %d (best epoch %d)", epoch, stopping.best_epoch)
            break
    bar.close()
    _keep_best_and_calibrate(fit, stopping, val, config=config)
    return TrainingResult(model=fit.model, best_epoch=stopping.best_epoch, history=history)


def save_checkpoint(model: PersisterNetwork, path: str | Path, extra: dict[str, Any] | None = None) -> None:
    """Save weights, calibration and the constructor arguments (tensors and plain types only)."""
    payload = {
        "architecture": model.architecture,
        "config": model.config,
        "state_dict": model.state_dict(),
        "extra": extra or {},
    }
    # To a buffer: saved to a path, every member of torch's archive is named after the (random)
    # temporary file, and equal weights would hash differently in dvc.lock.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path) -> PersisterNetwork:
    """Rebuild a model from :func:`save_checkpoint` output (``weights_only`` loading: no code runs)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        network_class = NETWORK_CLASSES[payload.get("architecture", "cnn_lstm")]
    except (OSError, RuntimeError, ValueError, KeyError, pickle.UnpicklingError) as exc:
        raise ModelError(f"{path}: not a model checkpoint ({exc.__class__.__name__})") from exc
    try:
        model = network_class(**payload["config"])
        model.load_state_dict(payload["state_dict"])
    except (TypeError, RuntimeError) as exc:  # written by another version of this code
        raise ModelError(
            f"{path}: checkpoint does not fit this version's network ({exc.__class__.__name__}); "
            "retrain with dvc repro"
        ) from exc
    model.eval()
    return model
