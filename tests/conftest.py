"""Shared fixtures: a small simulated dataset, split and preprocessed once per session."""

from __future__ import annotations

import os

import numpy as np
import pytest

# No test may reach the network.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

from dataclasses import replace  # noqa: E402

from oncopersistnet.config import shipped_params  # noqa: E402
from oncopersistnet.data.simulate import simulate_cells  # noqa: E402
from oncopersistnet.preprocessing import CellPreprocessor, split_by_sample  # noqa: E402

# A clear programme and no label noise: unit tests check mechanics, not difficulty.
SHIPPED = shipped_params()  # params.yaml: the one place defaults live
SMALL = replace(
    SHIPPED.simulate,
    n_cells=800,
    n_genes=300,
    n_samples=8,
    persister_fraction=0.4,
    effect_size=3.0,
    label_noise=0.0,
    seed=3,
)
# predict_file's decision rule with the project's own predict.* values
CALL_RULE = {
    "coverage": shipped_params().predict.coverage,
    "ood_warn_fraction": shipped_params().predict.ood_warn_fraction,
}
FAST_TRAIN = replace(
    SHIPPED.train,
    conv_channels=[4, 8],
    lstm_hidden=8,
    dense_units=8,
    max_epochs=12,
    patience=4,
    batch_size=64,
    learning_rate=0.005,
)


@pytest.fixture(scope="session")
def small_adata():
    """600 cells x 300 genes in 6 samples."""
    return simulate_cells(SMALL)


@pytest.fixture(scope="session")
def small_split(small_adata):
    """Split name per cell (by sample)."""
    return split_by_sample(
        small_adata.obs["sample"], small_adata.obs["label"], val_fraction=0.2, test_fraction=0.3, seed=0
    )


@pytest.fixture(scope="session")
def fitted(small_adata, small_split):
    """(preprocessor fitted on train, features per split, labels per split)."""
    y = (small_adata.obs["label"].to_numpy() == "persister").astype(int)
    pre = CellPreprocessor(n_top_genes=150, n_components=16).fit(
        small_adata.X[small_split == "train"], small_adata.var_names
    )
    features = {s: pre.transform(small_adata.X[small_split == s]) for s in ("train", "val", "test")}
    labels = {s: y[small_split == s] for s in ("train", "val", "test")}
    return pre, features, labels


@pytest.fixture(scope="session")
def trained(fitted):
    """A tiny CNN-LSTM trained on the fixture features."""
    from oncopersistnet.model import train_model

    _, features, labels = fitted
    return train_model(
        (features["train"], labels["train"]), (features["val"], labels["val"]), FAST_TRAIN, progress=False
    )


def fit_fixture_trust(pre, network, adata, split):
    """OOD distance and conformal scores of ``network`` on the fixture's train / validation cells."""
    from oncopersistnet.export import fit_trust

    y = (adata.obs["label"].to_numpy() == "persister").astype(int)
    return fit_trust(
        pre,
        network,
        train_counts=adata.X[split == "train"],
        val_counts=adata.X[split == "val"],
        val_y=y[split == "val"],
        ood_quantile=0.99,
    )


@pytest.fixture(scope="session")
def trust(fitted, trained, small_adata, small_split):
    """The trained fixture network's OOD distance and conformal scores."""
    return fit_fixture_trust(fitted[0], trained.model, small_adata, small_split)


def dense(matrix) -> np.ndarray:
    """Dense float64 copy of a (possibly sparse) matrix."""
    return (
        matrix.toarray().astype(np.float64)
        if hasattr(matrix, "toarray")
        else np.asarray(matrix, dtype=np.float64)
    )


@pytest.fixture()
def store(tmp_path, monkeypatch):
    """A temporary folder for an MLflow store, with the tracking URI restored afterwards.

    mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; setenv first so that
    monkeypatch restores the original value (or its absence) after the test.
    """
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "unset")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    yield tmp_path
    mlflow.set_tracking_uri(None)
