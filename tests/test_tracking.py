"""MLflow wiring against a real sqlite store in a temporary folder."""

from __future__ import annotations

from dataclasses import replace

import mlflow
import pytest

from oncopersistnet.config import shipped_params
from oncopersistnet.tracking import (
    EXPERIMENT_TAGS,
    configure_mlflow,
    log_params_once,
    resolve_tracking_uri,
    resumed_run,
)

MLFLOW = shipped_params().mlflow


def test_default_store_is_inside_the_project(store):
    experiment_id = configure_mlflow(replace(MLFLOW, experiment_name="t"), store)
    assert mlflow.get_tracking_uri() == f"sqlite:///{store / 'mlruns' / 'mlflow.db'}"
    experiment = mlflow.get_experiment(experiment_id)
    assert experiment.artifact_location == (store / "mlruns" / "artifacts").as_uri()
    assert EXPERIMENT_TAGS.items() <= experiment.tags.items()


def test_environment_overrides_the_store(store, monkeypatch):
    uri = f"sqlite:///{store / 'team.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert resolve_tracking_uri(replace(MLFLOW, tracking_uri="sqlite:///ignored.db"), store) == uri
    configure_mlflow(replace(MLFLOW, experiment_name="t"), store)
    assert (store / "team.db").exists() and not (store / "mlruns" / "mlflow.db").exists()


def test_an_unusable_store_fails_early_with_the_uri(store):
    from oncopersistnet.errors import ConfigError

    (store / "a_file").write_text("not a folder")
    with pytest.raises(ConfigError, match="MLflow tracking store sqlite:///.*/a_file/x.db is not usable"):
        configure_mlflow(
            replace(MLFLOW, experiment_name="t", tracking_uri=f"sqlite:///{store}/a_file/x.db"), store
        )


def test_rerun_params_update_and_revert(store):
    configure_mlflow(replace(MLFLOW, experiment_name="t"), store)
    with mlflow.start_run() as run:
        log_params_once({"evaluate.threshold": 0.5})
    run_id = run.info.run_id
    with resumed_run(run_id):
        log_params_once({"evaluate.threshold": 0.6, "export.opset": 17})
    data = mlflow.get_run(run_id).data
    assert data.params == {"evaluate.threshold": "0.5", "export.opset": "17"}
    assert data.tags["param_update.evaluate.threshold"] == "0.6"
    with resumed_run(run_id):
        log_params_once({"evaluate.threshold": 0.5})
    assert "param_update.evaluate.threshold" not in mlflow.get_run(run_id).data.tags
    assert mlflow.get_run(run_id).info.status == "FINISHED"


def test_a_failure_inside_a_resumed_run_marks_it_failed(store):
    configure_mlflow(replace(MLFLOW, experiment_name="t"), store)
    with mlflow.start_run() as run:
        pass
    with pytest.raises(RuntimeError):
        with resumed_run(run.info.run_id):
            raise RuntimeError("stage crashed")
    assert mlflow.get_run(run.info.run_id).info.status == "FAILED"
