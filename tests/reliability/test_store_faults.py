"""The MLflow store unreachable or unwritable, runs and files left behind by killed processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from oncopersistnet.atomic import remove_stale_temporaries, write_json
from oncopersistnet.config import shipped_params
from oncopersistnet.errors import ConfigError, ModelError
from oncopersistnet.processes import owner_alive, process_owner
from oncopersistnet.tracking import OWNER_TAG, close_orphaned_runs, configure_mlflow, resumed_run, tracked_run

MLFLOW = shipped_params().mlflow


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_unreachable_tracking_server_fails_in_seconds(store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # discard port: connection refused
    started = time.monotonic()
    with pytest.raises(
        ConfigError, match=r"MLflow tracking server http://127.0.0.1:9 is not reachable .*MLFLOW_TRACKING_URI"
    ):
        configure_mlflow(MLFLOW, store)
    # MLflow's own client would retry with back-off for minutes; not a timing assertion, a sanity bound.
    assert time.monotonic() - started < 60


def test_a_tracking_uri_mlflow_cannot_open_is_a_config_error(store, monkeypatch):
    (store / "a-file").write_text("not a folder")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'a-file' / 'mlflow.db'}")
    with pytest.raises(ConfigError, match="MLflow tracking store sqlite:///.*a-file/mlflow.db is not usable"):
        configure_mlflow(MLFLOW, store)


def test_unwritable_artifact_folder_fails_before_training(store):
    blocker = store / "not-a-folder"
    blocker.write_text("a file where the artifact folder should be")
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    mlflow.create_experiment("oncopersistnet", artifact_location=(blocker / "artifacts").as_uri())
    with pytest.raises(ConfigError, match=r"MLflow artifact folder .*not-a-folder/artifacts is not writable"):
        configure_mlflow(replace(MLFLOW, tracking_uri=f"sqlite:///{store / 'mlflow.db'}"), store)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_artifact_folder_fails_before_training(store):
    import mlflow

    artifacts = store / "artifacts"
    artifacts.mkdir()
    artifacts.chmod(0o555)
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    mlflow.create_experiment("oncopersistnet", artifact_location=artifacts.as_uri())
    try:
        with pytest.raises(ConfigError, match="is not writable"):
            configure_mlflow(replace(MLFLOW, tracking_uri=f"sqlite:///{store / 'mlflow.db'}"), store)
    finally:
        artifacts.chmod(0o755)


def test_runs_of_dead_processes_are_closed_live_ones_kept(store):
    import mlflow
    from mlflow import MlflowClient

    experiment_id = configure_mlflow(MLFLOW, store)
    client = MlflowClient()
    orphan = client.create_run(
        experiment_id, tags={OWNER_TAG: f"{os.uname().nodename}:{_dead_pid()}:1"}
    ).info.run_id
    elsewhere = client.create_run(experiment_id, tags={OWNER_TAG: "another-host:1:1"}).info.run_id
    untagged = client.create_run(experiment_id).info.run_id  # a user's own run: not ours to close
    with tracked_run(run_name="live") as live:
        assert close_orphaned_runs(experiment_id) == [orphan]
        assert mlflow.get_run(live.info.run_id).info.status == "RUNNING"
    statuses = {
        run_id: client.get_run(run_id).info.status
        for run_id in (orphan, elsewhere, untagged, live.info.run_id)
    }
    assert statuses == {
        orphan: "KILLED",
        elsewhere: "RUNNING",
        untagged: "RUNNING",
        live.info.run_id: "FINISHED",
    }
    assert "died with the run open" in client.get_run(orphan).data.tags["oncopersistnet.ended_by"]


def test_tracked_run_ends_killed_on_interrupt_and_failed_on_error(store):
    from mlflow import MlflowClient

    configure_mlflow(MLFLOW, store)
    ids = []
    for error in (KeyboardInterrupt, RuntimeError):
        with pytest.raises(error):
            with tracked_run(run_name=error.__name__) as run:
                ids.append(run.info.run_id)
                raise error()
    assert [MlflowClient().get_run(i).info.status for i in ids] == ["KILLED", "FAILED"]


def test_owner_of_this_process_is_alive_and_a_reused_pid_is_not():
    me = process_owner()
    assert owner_alive(me)
    host, pid, start = me.split(":")
    assert not owner_alive(f"{host}:{_dead_pid()}:{start}")
    assert not owner_alive(f"{host}:{pid}:{int(start) + 1}")  # same pid, another process start


def test_temporaries_of_dead_writers_are_swept_live_ones_kept(tmp_path: Path):
    target = tmp_path / "model.pt"
    host = os.uname().nodename
    dead = tmp_path / f".model.pt.{host}-{_dead_pid()}.abc.tmp"
    live = tmp_path / f".model.pt.{host}-{os.getpid()}.def.tmp"
    other_host = tmp_path / f".model.pt.elsewhere-{_dead_pid()}.ghi.tmp"
    other_target = tmp_path / f".metrics.json.{host}-{_dead_pid()}.jkl.tmp"
    for path in (dead, live, other_host, other_target):
        path.write_text("half-written")
    assert remove_stale_temporaries(target) == [dead]
    write_json(target, {"whole": True})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["model.pt", live.name, other_host.name, other_target.name]
    )


def test_reopening_a_deleted_or_unknown_run_is_a_model_error(store):
    from mlflow import MlflowClient

    experiment_id = configure_mlflow(MLFLOW, store)
    client = MlflowClient()
    run_id = client.create_run(experiment_id).info.run_id
    client.set_terminated(run_id)
    client.delete_run(run_id)  # deleted in the UI after training
    with pytest.raises(ModelError, match=f"MLflow run {run_id} was deleted; rerun the train stage"):
        with resumed_run(run_id):
            pass
    with pytest.raises(ModelError, match="MLflow run 0123456789abcdef cannot be reopened"):
        with resumed_run("0123456789abcdef"):
            pass
