"""Seeded training with class weighting and early stopping on the validation split.

Same params, same data -> same weights -> same metrics: seeds are set for Python,
NumPy and torch, torch runs deterministic kernels, and batches are shuffled by a
seeded generator.
"""

from __future__ import annotations

import copy
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

from oncopersistnet.atomic import atomic_path
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


def _batched(model: PersisterNetwork, features: np.ndarray, batch_size: int, calibrated: bool) -> np.ndarray:
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
        f"train.architecture: unknown network {config.architecture!r} (choose from {', '.join(NETWORK_CLASSES)})"
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


def train_model(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    config: TrainConfig,
    on_epoch: EpochCallback | None = None,
    progress: bool = True,
    initial: PersisterNetwork | None = None,
    train_only: tuple[str, ...] | None = None,
) -> TrainingResult:
    """Train the network of ``config.architecture``; keep the weights of the best validation
    loss, then fit the probability calibration (``config.calibration``) on the validation split.

    Fine-tuning passes ``initial``, a trained network to start from (copied, never
    changed in place; its calibration is refitted), and optionally ``train_only``,
    the names of the submodules whose weights may move (``("head",)``: the dense
    head on frozen convolutional and recurrent layers, whose BatchNorm statistics
    stay frozen too).
    """
    seed_everything(config.seed)
    model = build_network(config, X_train.shape[1]) if initial is None else copy.deepcopy(initial)
    model.set_calibration(1.0, 0.0)
    frozen = _freeze_all_but(model, train_only)
    n_pos = float(y_train.sum())
    n_neg = float(len(y_train) - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ModelError("train: the training split must contain both persisters and non-persisters")
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(n_neg / n_pos))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    X_t = torch.from_numpy(np.asarray(X_train, dtype=np.float32))
    y_t = torch.from_numpy(np.asarray(y_train, dtype=np.float32))
    X_v = torch.from_numpy(np.asarray(X_val, dtype=np.float32))
    y_v = torch.from_numpy(np.asarray(y_val, dtype=np.float32))

    best_loss, best_epoch, best_state, stale = float("inf"), 0, None, 0
    history: list[dict[str, float]] = []
    bar = tqdm(range(1, config.max_epochs + 1), desc="training", unit="epoch", disable=not progress)
    for epoch in bar:
        model.train()
        for module in frozen:
            module.eval()  # frozen BatchNorm keeps its running statistics
        order = torch.randperm(len(X_t), generator=generator)
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            if len(idx) < 2:  # BatchNorm needs more than one cell per batch
                continue
            optimiser.zero_grad()
            loss = loss_fn(model(X_t[idx]), y_t[idx])
            loss.backward()
            optimiser.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            val_logits = model(X_v)
            val_loss = loss_fn(val_logits, y_v).item()
        val_prob = torch.sigmoid(val_logits).numpy()
        row = {
            "train_loss": total / len(X_t),
            "val_loss": val_loss,
            "val_f1": float(f1_score(y_val, val_prob >= 0.5, zero_division=0)),
            "val_roc_auc": _safe_auc(np.asarray(y_val), val_prob),
        }
        history.append(row)
        if on_epoch is not None:
            on_epoch(epoch, row)
        bar.set_postfix(train_loss=f"{row['train_loss']:.3f}", val_loss=f"{val_loss:.3f}")
        if val_loss < best_loss - 1e-6:
            best_loss, best_epoch, stale = val_loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                logger.info("early stopping at epoch %d (best epoch %d)", epoch, best_epoch)
                break
    bar.close()
    if best_state is None:
        raise ModelError(
            "train: the validation loss was never finite (training diverged); lower train.learning_rate "
            "or check the features for extreme values"
        )
    model.load_state_dict(best_state)
    model.eval()
    for module in frozen:
        module.requires_grad_(True)  # frozen for this training only, not for later use
    scale, shift = fit_calibration(predict_logits(model, X_val), np.asarray(y_val), config.calibration)
    model.set_calibration(scale, shift)
    logger.info(
        "best validation loss %.4f at epoch %d; %s calibration on validation: scale %.3f, shift %.3f",
        best_loss,
        best_epoch,
        config.calibration,
        scale,
        shift,
    )
    return TrainingResult(model=model, best_epoch=best_epoch, history=history)


def save_checkpoint(model: PersisterNetwork, path: str | Path, extra: dict[str, Any] | None = None) -> None:
    """Save weights, calibration and the constructor arguments (tensors and plain types only)."""
    payload = {
        "architecture": model.architecture,
        "config": model.config,
        "state_dict": model.state_dict(),
        "extra": extra or {},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


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
            f"{path}: checkpoint does not fit this version's network ({exc.__class__.__name__}); retrain with dvc repro"
        ) from exc
    model.eval()
    return model
