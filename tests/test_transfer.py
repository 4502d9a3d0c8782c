"""Transfer to an independent dataset.

Refitted scaling, frozen layers, zero-shot vs fine-tuned, tracked and registered.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch
from conftest import FAST_TRAIN, SMALL

from oncopersistnet.atomic import rounded
from oncopersistnet.config import shipped_params
from oncopersistnet.data.cells import Cells
from oncopersistnet.data.simulate import simulate_cells
from oncopersistnet.errors import ConfigError, InputDataError, ModelError
from oncopersistnet.inference.model import OnnxPersisterModel
from oncopersistnet.model import CnnLstmClassifier, MlpClassifier, train_model
from oncopersistnet.preprocessing import split_by_sample
from oncopersistnet.registry.resolve import load_model
from oncopersistnet.registry.trainable import TrainableModel, load_trainable
from oncopersistnet.tracking import configure_mlflow
from oncopersistnet.transfer.adapt import adapt, head_modules, map_to_model


@pytest.fixture(scope="module")
def parent(fitted, trained):
    pre, _, _ = fitted
    return TrainableModel(pre, trained.model, "test-parent")


@pytest.fixture(scope="module")
def target():
    """Another study: same biology (world), other cultures, a shallower and noisier assay, a partial panel."""
    adata = simulate_cells(replace(SMALL, seed=11, effect_size=2.5, n_cells=700))
    keep = np.random.default_rng(0).random(adata.n_vars) < 0.8  # the new panel lacks ~20 % of the genes
    return adata[:, keep].copy()


def _cells(parent, adata):
    selected = parent.preprocessor.genes_[parent.preprocessor.selected_]
    cells = map_to_model(Cells.from_anndata(adata), parent.preprocessor.genes_, selected, source="target")
    split = split_by_sample(
        adata.obs["sample"], adata.obs["label"], val_fraction=0.2, test_fraction=0.3, seed=0
    )
    return cells, split


def test_missing_genes_are_nan_and_the_panel_overlap_is_reported(parent, target):
    cells, _ = _cells(parent, target)
    absent = ~np.isin(parent.preprocessor.genes_, target.var_names)
    assert absent.any() and np.isnan(cells.cells.X[:, absent]).all()
    assert not np.isnan(cells.cells.X[:, ~absent]).any()
    assert cells.match.n_matched == (~absent).sum()


def test_refit_scaling_keeps_the_axes_and_follows_the_new_cells(parent, target):
    cells, split = _cells(parent, target)
    old = parent.preprocessor
    new = old.refit_scaling(cells.cells.X[split == "train"])
    assert np.array_equal(new.selected_, old.selected_) and np.array_equal(new.components_, old.components_)
    assert not np.allclose(new.min_, old.min_) or not np.allclose(new.pca_mean_, old.pca_mean_)
    features = new.transform(cells.cells.X[split == "train"])
    assert np.allclose(features.mean(axis=0), 0.0, atol=1e-4)  # centred on the new training cells
    absent_selected = np.isnan(cells.cells.X[:, old.selected_]).all(axis=0)
    assert absent_selected.any()
    assert np.allclose(
        new.impute_mean_[absent_selected], old.impute_mean_[absent_selected]
    )  # no data: old means kept
    assert old.min_ is not new.min_  # the parent is not changed in place


def test_head_fine_tuning_moves_only_the_head(parent, target):
    cells, split = _cells(parent, target)
    X = {s: parent.preprocessor.transform(cells.cells.X[split == s]) for s in ("train", "val")}
    y = {s: cells.cells.y[split == s] for s in ("train", "val")}
    before = {k: v.clone() for k, v in parent.network.state_dict().items()}
    result = train_model(
        (X["train"], y["train"]),
        (X["val"], y["val"]),
        FAST_TRAIN,
        progress=False,
        initial=parent.network,
        train_only=head_modules(parent.network),
    )
    after = result.model.state_dict()
    for key, value in before.items():
        assert torch.equal(parent.network.state_dict()[key], value), f"parent changed: {key}"
        if key.startswith(("conv.", "lstm.")):
            assert torch.equal(after[key], value), f"frozen {key} moved"  # includes BatchNorm running stats
    assert any(not torch.equal(after[k], before[k]) for k in before if k.startswith("head."))
    assert all(p.requires_grad for p in result.model.parameters())  # frozen for that training only


def test_head_mode_names_what_a_network_lacks():
    assert head_modules(CnnLstmClassifier(20)) == ("head",)
    with pytest.raises(ConfigError, match="use mode: all"):
        head_modules(MlpClassifier(20, 16))
    with pytest.raises(ModelError, match="cannot train only"):
        train_model(
            (np.zeros((4, 20), np.float32), np.array([0, 1, 0, 1])),
            (np.zeros((2, 20), np.float32), np.array([0, 1])),
            FAST_TRAIN,
            progress=False,
            initial=CnnLstmClassifier(20),
            train_only=("decoder",),
        )


@pytest.mark.parametrize("mode", ["head", "all"])
def test_adapt_scores_zero_shot_and_fine_tuned_on_the_same_test_cells(parent, target, mode):
    cells, split = _cells(parent, target)
    adapted = adapt(parent, cells, split, config=FAST_TRAIN, mode=mode, refit_scaling=True)
    n_test = int((split == "test").sum())
    assert len(adapted.zero_shot_probability) == len(adapted.fine_tuned_probability) == n_test
    # A clear programme in the same world: both beat chance on the new study.
    assert adapted.zero_shot["roc_auc"] > 0.7 and adapted.fine_tuned["roc_auc"] > 0.7


def _write_target(tmp_path, adata):
    path = tmp_path / "external" / "study.h5ad"
    path.parent.mkdir()
    adata.obs = adata.obs.drop(columns=["condition"]).rename(columns={"sample": "donor", "label": "status"})
    adata.obs["status"] = (
        adata.obs["status"].map({"persister": "treated", "non-persister": "control"}).astype(str)
    )
    adata.write_h5ad(path)
    return path


def test_run_transfer_tracks_registers_and_writes_the_whole_folder(parent, target, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from oncopersistnet.transfer.workflow import run_transfer

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    path = _write_target(tmp_path, target.copy())
    shipped = shipped_params()
    config = replace(
        shipped.transfer,
        input=str(path),
        dataset_name="study2",
        label_key="status",
        sample_key="donor",
        persister_values=["treated"],
        non_persister_values=["control"],
        max_epochs=6,
        val_fraction=0.2,
        test_fraction=0.3,
        baselines=["logistic_regression"],
    )
    params = replace(
        shipped,
        transfer=config,
        train=FAST_TRAIN,
        register=replace(shipped.register, min_f1=0.0, min_roc_auc=0.0),
    )
    parent.registered_name, parent.registered_version = "parent-model", "7"
    out = tmp_path / "adapted"
    record = tmp_path / "adapted.registration.json"
    summary = run_transfer(
        params, parent, out, experiment_id=configure_mlflow(params.mlflow, tmp_path), record=record
    )

    assert sorted(p.name for p in out.iterdir()) == [
        "model.pt",
        "oncopersistnet.onnx",
        "preprocessor.npz",
        "transfer.json",
        "transfer.md",
    ]
    # the folder's file holds the figures at the metrics files' digits
    assert json.loads((out / "transfer.json").read_text())["fine_tuned"] == rounded(summary["fine_tuned"])
    registration = summary["registration"]
    assert registration["model_name"] == "oncopersistnet-study2" and registration["alias"] == "champion"
    # The folder (a DVC output in the pipeline) names no registry version, run or commit; the record does.
    assert json.loads(record.read_text()) == {
        "registration": registration,
        "parent_model_uri": "models:/parent-model/7",
    }
    assert not {"registration", "parent_model_uri"} & set(json.loads((out / "transfer.json").read_text()))
    assert registration["run_id"] not in (out / "transfer.md").read_text()
    local = {p.key for p in onnx.load(str(out / "oncopersistnet.onnx")).metadata_props}
    assert "transfer_dataset" in local and not {"parent_model_uri", "git_commit", "mlflow_run_id"} & local
    registered = load_model("models:/oncopersistnet-study2@champion")
    assert registered.metadata["parent_model_uri"] == "models:/parent-model/7"
    assert (
        registered.metadata["git_commit"]
        and registered.genes == OnnxPersisterModel(out / "oncopersistnet.onnx").genes
    )
    client = MlflowClient()
    run = client.get_run(registration["run_id"])
    assert run.data.tags["parent_model_uri"] == "models:/parent-model/7"
    assert run.data.tags["run_kind"] == "transfer"
    assert {"zero_shot_roc_auc", "test_roc_auc", "new_data_logistic_regression_roc_auc"} <= set(
        run.data.metrics
    )
    version = client.get_model_version("oncopersistnet-study2", registration["version"])
    assert version.tags["parent_model_uri"] == "models:/parent-model/7"
    # The adapted version is itself trainable from the registry: explain / transfer again start from it.
    again = load_trainable("models:/oncopersistnet-study2@champion")
    assert again.registered_version == registration["version"]
    assert "transferred, fine-tuned" in (out / "transfer.md").read_text()


def test_run_transfer_on_bad_input_leaves_nothing(parent, target, tmp_path, monkeypatch):
    from oncopersistnet.transfer.workflow import run_transfer

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    path = _write_target(tmp_path, target.copy())
    shipped = shipped_params()
    config = replace(
        shipped.transfer,
        input=str(path),
        sample_key="patient_id",
        label_key="status",
        persister_values=["treated"],
        non_persister_values=["control"],
    )
    with pytest.raises(InputDataError, match="no column 'patient_id'"):
        params = replace(shipped, transfer=config, train=FAST_TRAIN)
        run_transfer(
            params,
            parent,
            tmp_path / "adapted",
            experiment_id=configure_mlflow(params.mlflow, tmp_path),
            record=tmp_path / "adapted.registration.json",
        )
    assert not (tmp_path / "adapted").exists() and not (tmp_path / "adapted.registration.json").exists()
    assert not list(tmp_path.glob(".adapted*"))


def test_transfer_cli_help_and_config_errors(tmp_path, monkeypatch):
    from oncopersistnet.cli import main

    with pytest.raises(SystemExit) as done:
        main(["transfer", "--help"])
    assert done.value.code == 0
    monkeypatch.chdir(tmp_path)
    assert main(["transfer", "--input", "x.h5ad", "--learning-rate", "-1"]) == 1  # validated like params.yaml


def test_a_study_sharing_no_gene_the_model_reads_is_refused(parent, target):
    renamed = target.copy()
    renamed.var_names = [f"NOTAGENE{i}" for i in range(renamed.n_vars)]
    with pytest.raises(InputDataError, match="shares none of the"):
        _cells(parent, renamed)
