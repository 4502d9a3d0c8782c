"""The persister networks: the hybrid CNN-LSTM and a same-size MLP to test its premise.

The CNN-LSTM reads the PCA vector as a one-channel sequence, components in order
of explained variance: 1-D convolutions pick up local patterns across
neighbouring components, an LSTM summarises the convolved sequence, and dense
layers map the summary to one persister logit. PCA components have no natural
order beyond their variance rank, so whether that reading helps is an empirical
question; the comparison stage measures it against random component orders and
against :class:`MlpClassifier`, a plain network with about the same number of
parameters.

Both carry a probability calibration (``sigmoid(scale * logit + shift)``, fitted
on the validation split after training) as buffers, so the checkpoint, the Python
path and the exported ONNX graph all apply the same calibration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

ARCHITECTURES = ("cnn_lstm", "mlp")


class PersisterNetwork(nn.Module):
    """Base: ``forward`` gives raw logits; :meth:`calibrated_probability` the calibrated probability."""

    architecture = ""

    def __init__(self) -> None:
        super().__init__()
        # Identity until fitted: training and early stopping see raw logits.
        self.register_buffer("calibration", torch.tensor([1.0, 0.0]))
        self.config: dict[str, Any] = {}

    def set_calibration(self, scale: float, shift: float) -> None:
        """Store the fitted calibration (``scale`` = 1 / temperature, ``shift`` = Platt intercept)."""
        self.calibration.copy_(torch.tensor([float(scale), float(shift)]))

    def calibrated_probability(self, features: torch.Tensor) -> torch.Tensor:
        """Calibrated persister probability, shape ``(batch,)``."""
        return torch.sigmoid(self(features) * self.calibration[0] + self.calibration[1])

    @property
    def n_parameters(self) -> int:
        """Trainable parameters (the calibration buffer is not one)."""
        return sum(p.numel() for p in self.parameters())


class CnnLstmClassifier(PersisterNetwork):
    """Conv1D blocks -> (bi)LSTM -> dense -> logit.

    Input: ``(batch, n_features)`` float32. Output: ``(batch,)`` logits.
    """

    architecture = "cnn_lstm"

    def __init__(
        self,
        n_features: int,
        conv_channels: Sequence[int] = (16, 32),
        kernel_size: int = 5,
        lstm_hidden: int = 32,
        lstm_layers: int = 1,
        bidirectional: bool = True,
        dense_units: int = 32,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.config = {
            "n_features": n_features,
            "conv_channels": list(conv_channels),
            "kernel_size": kernel_size,
            "lstm_hidden": lstm_hidden,
            "lstm_layers": lstm_layers,
            "bidirectional": bidirectional,
            "dense_units": dense_units,
            "dropout": dropout,
        }
        layers: list[nn.Module] = []
        in_channels = 1
        for channels in conv_channels:
            layers += [
                nn.Conv1d(in_channels, channels, kernel_size, padding=kernel_size // 2),
                nn.BatchNorm1d(channels),
                nn.ReLU(),
            ]
            in_channels = channels
        # Halve the sequence once when it is long enough; shorter LSTM, same receptive field.
        if n_features >= 8:
            layers.append(nn.MaxPool1d(2))
        self.conv = nn.Sequential(*layers)
        self.lstm = nn.LSTM(
            input_size=in_channels,
            hidden_size=lstm_hidden,
            num_layers=lstm_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if lstm_layers > 1 else 0.0,
        )
        summary = lstm_hidden * (2 if bidirectional else 1)
        self.head = nn.Sequential(
            nn.Linear(summary, dense_units),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(dense_units, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits of being a persister, shape ``(batch,)``."""
        sequence = self.conv(features.unsqueeze(1))  # (batch, channels, length)
        _, (hidden, _) = self.lstm(sequence.transpose(1, 2))  # hidden: (layers*dirs, batch, H)
        if self.lstm.bidirectional:
            summary = torch.cat([hidden[-2], hidden[-1]], dim=1)
        else:
            summary = hidden[-1]
        return self.head(summary).squeeze(1)


class MlpClassifier(PersisterNetwork):
    """Two hidden ReLU layers of equal width -> logit; order-free control for the CNN-LSTM."""

    architecture = "mlp"

    def __init__(self, n_features: int, hidden_units: int = 128, dropout: float = 0.2) -> None:
        super().__init__()
        self.config = {"n_features": n_features, "hidden_units": hidden_units, "dropout": dropout}
        self.layers = nn.Sequential(
            nn.Linear(n_features, hidden_units),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_units, hidden_units),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_units, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits of being a persister, shape ``(batch,)``."""
        return self.layers(features).squeeze(1)


def mlp_width_for(n_parameters: int, n_features: int) -> int:
    """Hidden width at which :class:`MlpClassifier` has about ``n_parameters`` parameters.

    Parameters of two equal hidden layers of width h: h^2 + (n_features + 3) h + 1.
    """
    b = n_features + 3
    return max(1, round((-b + math.sqrt(b * b + 4 * max(n_parameters - 1, 0))) / 2))


NETWORK_CLASSES: dict[str, type[PersisterNetwork]] = {"cnn_lstm": CnnLstmClassifier, "mlp": MlpClassifier}
