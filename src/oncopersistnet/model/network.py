"""The persister networks: the hybrid CNN-LSTM, its attention variant and a same-size MLP.

The CNN-LSTM reads the PCA vector as a one-channel sequence, components in order
of explained variance: 1-D convolutions pick up local patterns across
neighbouring components, an LSTM summarises the convolved sequence, and dense
layers map the summary to one persister logit. :class:`CnnLstmAttentionClassifier`
replaces the LSTM's final state by additive attention pooling over every LSTM
output, so no position has to carry the whole sequence to the end and the
attention weights say where the network read. PCA components have no natural
order beyond their variance rank, so whether that reading helps is an empirical
question; the comparison stage measures it against random component orders and
against :class:`MlpClassifier`, a plain network with about the same number of
parameters.

All carry a probability calibration (``sigmoid(scale * logit + shift)``, fitted
on the validation split after training) as buffers, so the checkpoint, the Python
path and the exported ONNX graph all apply the same calibration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from oncopersistnet.choices import NETWORK_ARCHITECTURES

ARCHITECTURES = NETWORK_ARCHITECTURES


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
        *,
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
        outputs, hidden = self._encode(features)
        return self.head(self._summarise(outputs, hidden)).squeeze(1)

    def _encode(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Conv blocks then LSTM: every step's output ``(batch, length, H*dirs)`` and the
        final hidden states ``(layers*dirs, batch, H)``."""
        sequence = self.conv(features.unsqueeze(1))  # (batch, channels, length)
        outputs, (hidden, _) = self.lstm(sequence.transpose(1, 2))
        return outputs, hidden

    def _summarise(self, outputs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """One vector per cell for the head: the last layer's final state (both directions)."""
        if self.lstm.bidirectional:
            return torch.cat([hidden[-2], hidden[-1]], dim=1)
        return hidden[-1]


class CnnLstmAttentionClassifier(CnnLstmClassifier):
    """Conv1D blocks -> (bi)LSTM -> additive attention pooling -> dense -> logit.

    The same conv blocks, LSTM and head as :class:`CnnLstmClassifier` (and, built
    from the same seed, the same initial weights for them), so a comparison of the
    two measures only the pooling. Instead of the final hidden state the head reads

        score_t = v^T tanh(W h_t + b),  alpha = softmax_t(score),  summary = sum_t alpha_t h_t

    over every LSTM output ``h_t``. A final state has to carry what it saw early
    through every later step (the forward direction reads the most variant
    components first); attention lets the head weigh any position directly.

    Takes :class:`CnnLstmClassifier`'s arguments plus ``attention_units`` (width of
    ``W``). Input: ``(batch, n_features)`` float32. Output: ``(batch,)`` logits.
    """

    architecture = "cnn_lstm_attention"

    def __init__(self, n_features: int, *, attention_units: int = 32, **kwargs: Any) -> None:
        super().__init__(n_features, **kwargs)
        self.config["attention_units"] = attention_units  # checkpoints rebuild the model from config
        # Built after the shared layers, so those draw the same initial weights as the CNN-LSTM's.
        self.attention = nn.Sequential(
            nn.Linear(self.lstm.hidden_size * (2 if self.lstm.bidirectional else 1), attention_units),
            nn.Tanh(),
            nn.Linear(
                attention_units, 1, bias=False
            ),  # a bias would shift every score equally: no effect on softmax
        )

    def _weights(self, outputs: torch.Tensor) -> torch.Tensor:
        """alpha over positions, ``(batch, length)``."""
        return torch.softmax(self.attention(outputs).squeeze(2), dim=1)

    def _summarise(self, outputs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """The attention-weighted mean of every LSTM output (the final state is not used)."""
        return (self._weights(outputs).unsqueeze(2) * outputs).sum(dim=1)

    def attention_weights(self, features: torch.Tensor) -> torch.Tensor:
        """Attention weights alpha, shape ``(batch, length)``; each row is non-negative and sums to 1.

        Position ``t`` is centred on the components :meth:`components_per_position`
        gives: with the default MaxPool (``n_features >= 8``) components ``2t`` and
        ``2t + 1`` (0-based, in the order the network reads them: explained-variance
        order, or the permuted order of a permuted twin; an odd last component is
        dropped by the pooling). The convolutions widen each position's view by
        ``kernel_size // 2`` components per conv block on each side, and the LSTM
        carries context along the sequence, so alpha says where the head read, not
        which single components matter. Runs in the model's current mode (call
        ``eval()`` first for BatchNorm's running statistics) and keeps gradients.
        """
        outputs, _ = self._encode(features)
        return self._weights(outputs)

    def components_per_position(self) -> list[tuple[int, ...]]:
        """The input components each attention position is centred on (odd ``kernel_size``;
        an even one adds a position per conv block and shifts the centres by half a component)."""
        n = int(self.config["n_features"])
        if any(isinstance(layer, nn.MaxPool1d) for layer in self.conv):
            return [(2 * t, 2 * t + 1) for t in range(n // 2)]
        return [(t,) for t in range(n)]


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


NETWORK_CLASSES: dict[str, type[PersisterNetwork]] = {
    "cnn_lstm": CnnLstmClassifier,
    "cnn_lstm_attention": CnnLstmAttentionClassifier,
    "mlp": MlpClassifier,
}
