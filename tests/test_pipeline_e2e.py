"""End to end, for real: `dvc repro` in a fresh git repository, MLflow registry, onnxruntime.

A user's path: rebuild the pipeline, read the metrics, find the champion in the
registry, classify new cells with it; rebuild again (nothing to do); change one
param and see only the stages that read it rerun.
"""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
import yaml

from helpers import TINY_PARAMS, make_project, run

pytestmark = pytest.mark.slow

STAGES = ("ingest", "validate", "preprocess", "train", "evaluate", "export", "register")


def _ran(output: str) -> list[str]:
    return [s for s in STAGES if f"Running stage '{s}'" in output]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("e2e"), TINY_PARAMS)
    result = run(["dvc", "repro"], project)
    assert _ran(result.stdout + result.stderr) == list(STAGES)
    return project


def test_repro_writes_metrics_for_network_and_baseline(project):
    metrics = json.loads((project / "metrics/evaluate.json").read_text())
    for model in ("cnn_lstm", "logistic_regression"):
        for name in ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "balanced_accuracy"):
            assert 0.0 <= metrics[model][name] <= 1.0
        assert metrics[model]["roc_auc"] > 0.6
    shown = run(["dvc", "metrics", "show", "--json"], project).stdout
    assert "cnn_lstm" in shown
    export = json.loads((project / "metrics/export.json").read_text())
    assert export["parity_max_abs_diff"] <= 1e-5


def test_registered_champion_and_mlflow_run(project):
    registry = json.loads((project / "models/registry.json").read_text())
    assert registry["alias"] == "champion" and registry["version"] == "1"
    code = (
        "import mlflow, json\n"
        "from mlflow import MlflowClient\n"
        "mlflow.set_tracking_uri('sqlite:///mlruns/mlflow.db')\n"
        "c = MlflowClient()\n"
        "v = c.get_model_version_by_alias('oncopersistnet', 'champion')\n"
        "r = c.get_run(v.run_id)\n"
        "arts = [a.path for a in c.list_artifacts(r.info.run_id, 'figures')]\n"
        "print(json.dumps({'version': str(v.version), 'params': r.data.params, 'metrics': r.data.metrics, 'tags': r.data.tags, 'figures': arts, 'status': r.info.status}))\n"
    )
    info = json.loads(run([sys.executable, "-c", code], project).stdout.strip().splitlines()[-1])
    assert info["version"] == "1" and info["status"] == "FINISHED"
    assert info["params"]["train.learning_rate"] == "0.001"
    assert {"test_f1", "test_roc_auc", "logistic_regression_test_f1", "onnx_parity_max_abs_diff", "val_loss"} <= set(info["metrics"])
    assert {"git_commit", "data_hash", "params_hash", "model_family", "dvc_raw_md5"} <= set(info["tags"])
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    raw_md5 = next(o["md5"] for o in lock["stages"]["ingest"]["outs"] if o["path"] == "data/raw/cells.h5ad")
    assert info["tags"]["dvc_raw_md5"] == raw_md5  # the run traces back to the DVC-versioned raw data
    assert info["tags"]["git_commit"] != "unknown"
    assert sorted(info["figures"]) == ["figures/confusion.png", "figures/roc_pr.png", "figures/training_curves.png"]


def test_champion_classifies_new_cells_with_onnxruntime(project):
    run(["oncopersistnet", "simulate", "--output", "new.h5ad", "--cells", "200", "--genes", "300", "--samples", "2", "--seed", "99", "--unlabelled"], project)
    result = run(["oncopersistnet", "predict", "--input", "new.h5ad", "--output", "pred.csv", "--no-progress"], project)
    summary = json.loads(result.stdout)
    assert summary["cells"] == 200 and summary["model"] == "models:/oncopersistnet@champion"
    table = pd.read_csv(project / "pred.csv")
    assert len(table) == 200 and set(table["predicted_label"]) <= {"persister", "non-persister"}


def test_second_repro_does_nothing(project):
    result = run(["dvc", "repro"], project)
    assert _ran(result.stdout + result.stderr) == []
    assert "up to date" in run(["dvc", "status"], project).stdout


def test_changing_the_gate_reruns_only_register(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["register"]["min_f1"] = 0.999
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run(["dvc", "repro"], project)
    assert _ran(result.stdout + result.stderr) == ["register"]
    registry = json.loads((project / "models/registry.json").read_text())
    assert registry["version"] == "2" and registry["alias"] == "challenger"
    assert "< required 0.999" in registry["reason"]
    # the champion did not move
    code = (
        "import mlflow\nfrom mlflow import MlflowClient\n"
        "mlflow.set_tracking_uri('sqlite:///mlruns/mlflow.db')\n"
        "print(MlflowClient().get_model_version_by_alias('oncopersistnet', 'champion').version)\n"
    )
    assert run([sys.executable, "-c", code], project).stdout.strip().splitlines()[-1] == "1"
