"""Hybrid CNN-LSTM over the PCA vector.

The PCA vector is read as a one-channel sequence, components in order of
explained variance: 1-D convolutions pick up local patterns across neighbouring
components, an LSTM summarises the convolved sequence, and dense layers map the
summary to one persister logit. Whether that ordering carries meaning is an
empirical question the evaluation issue measures; the architecture is the one
the project set out to test.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class CnnLstmClassifier(nn.Module):
    """Conv1D blocks -> (bi)LSTM -> dense -> logit.

    Input: ``(batch, n_features)`` float32. Output: ``(batch,)`` logits.
    """

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
