"""A stage killed midway (SIGTERM, then SIGKILL) under a real `dvc repro`.

Nothing half-written may remain, the next `dvc repro` must finish with the same
metrics as a run nobody interrupted, and MLflow must not show the killed
attempts as RUNNING.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from helpers import TINY_PARAMS, deep_update, env, make_project, run
from serving_helpers import free_port, onnx_model  # noqa: F401  (onnx_model is a fixture)

# Long enough that the kill lands during training, identical for both projects.
PARAMS = deep_update(TINY_PARAMS, {"train": {"max_epochs": 60, "patience": 60}})
TARGET = "evaluate"  # ingest .. evaluate: what training needs and what it is judged by
TRAIN_OUTPUTS = (
    "models/model.pt",
    "models/mlflow_run.json",
    "metrics/training_history.csv",
    "reports/figures/training_curves.png",
)


def _train_process(repro: subprocess.Popen[str], timeout_s: float = 300) -> psutil.Process:
    """The `python pipelines/train.py` process DVC started, once it has begun training.

    DVC runs a stage through ``$SHELL -c`` (``/bin/sh`` when SHELL is unset). bash execs the
    command, but dash forks it, so the shell's own command line also names the script: only
    a process with the script as an argument of its own is the stage.
    """
    deadline = time.monotonic() + timeout_s
    parent = psutil.Process(repro.pid)
    while time.monotonic() < deadline:
        if repro.poll() is not None:
            raise AssertionError(
                f"dvc repro ended ({repro.returncode}) before train started:\n"
                f"{repro.communicate()[1][-3000:]}"
            )
        for child in parent.children(recursive=True):
            try:
                if "pipelines/train.py" in child.cmdline()[1:]:
                    return child
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.02)
    raise AssertionError("train never started")


def _kill_train(project: Path, sig: signal.Signals) -> tuple[int, str]:
    """Start `dvc repro`, send ``sig`` to the train stage once its MLflow run is open, return DVC's exit
    and stderr."""
    db = project / "mlruns" / "mlflow.db"
    logged_before = _epochs_logged(db)
    repro = subprocess.Popen(
        ["dvc", "repro", TARGET],
        cwd=project,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    train = _train_process(repro)
    # This attempt's run is open, and training under way, once its per-epoch metrics start to land.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and _epochs_logged(db) == logged_before:
        assert train.is_running(), "train finished before it could be killed"
        time.sleep(0.05)
    train.send_signal(sig)
    _, stderr = repro.communicate(timeout=300)
    return repro.returncode, stderr


def _epochs_logged(db: Path) -> int:
    """How many training epochs all runs of the store have logged so far (read-only peek at the sqlite
    file)."""
    if not db.exists():
        return 0
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as connection:
            return connection.execute("select count(*) from metrics where key = 'train_loss'").fetchone()[0]
    except sqlite3.Error:
        return 0


def _deployable_runs(project: Path) -> list[tuple[str, str]]:
    """(run id, status) of every train-stage run, oldest first."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("oncopersistnet")
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.run_kind = 'deployable'",
        order_by=["attributes.start_time ASC"],
    )
    return [(r.info.run_id, r.info.status) for r in runs]


def _leftovers(project: Path) -> list[str]:
    """Temporary files and train outputs that a killed attempt must not leave behind."""
    found = [
        str(p.relative_to(project))
        for p in project.rglob("*.tmp")
        if ".dvc" not in p.parts and "mlruns" not in p.parts
    ]
    return found + [name for name in TRAIN_OUTPUTS if (project / name).exists()]


@pytest.mark.slow
def test_killed_train_leaves_nothing_and_repro_recovers_the_same_metrics(tmp_path):
    reference = make_project(tmp_path / "uninterrupted", PARAMS)
    run(["dvc", "repro", TARGET], reference)
    expected = json.loads((reference / "metrics" / "evaluate.json").read_text())

    project = make_project(tmp_path / "killed", PARAMS)

    code, stderr = _kill_train(project, signal.SIGTERM)
    assert code != 0
    assert "train stopped (received signal SIGTERM); no partial output was kept" in stderr
    assert _leftovers(project) == []
    runs = _deployable_runs(project)
    assert [status for _, status in runs] == ["KILLED"], runs  # closed by the stage itself

    code, _ = _kill_train(project, signal.SIGKILL)
    assert code != 0
    assert _leftovers(project) == []
    assert [status for _, status in _deployable_runs(project)] == [
        "KILLED",
        "RUNNING",
    ]  # nobody could close it yet

    run(["dvc", "repro", TARGET], project)
    statuses = _deployable_runs(project)
    # The next start closed the SIGKILLed run; only the completed one is FINISHED.
    assert [status for _, status in statuses] == ["KILLED", "KILLED", "FINISHED"], statuses
    assert json.loads((project / "metrics" / "evaluate.json").read_text()) == expected
    assert json.loads((project / "models" / "mlflow_run.json").read_text())["run_id"] == statuses[-1][0]
    assert (
        run(["dvc", "status", TARGET], project).stdout.strip().endswith("Data and pipelines are up to date.")
    )


def test_sigterm_to_a_command_while_it_writes_exits_143_and_keeps_no_output(tmp_path):
    """`oncopersistnet` commands stop like stages: here `simulate`, stopped while it writes its .h5ad."""
    output = tmp_path / "cells.h5ad"
    command = [
        sys.executable,
        "-m",
        "oncopersistnet.cli",
        "simulate",
        "--output",
        str(output),
        "--cells",
        "200000",
    ]
    process = subprocess.Popen(command, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in process.stderr:  # the simulation is done and the write begins after this line
        lines.append(line)
        if "simulated 200000 cells" in line:
            process.send_signal(signal.SIGTERM)
            break
    lines += process.stderr.readlines()
    process.wait(timeout=120)
    stderr = "".join(lines)
    assert process.returncode == 143, stderr
    assert "simulate stopped (received signal SIGTERM); no partial output was kept" in stderr
    assert "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []


def test_sigterm_stops_serve_gracefully(onnx_model, tmp_path):
    """For a service SIGTERM is the normal way to stop: exit 0, no error line."""
    import requests

    port = free_port()
    command = [
        sys.executable,
        "-m",
        "oncopersistnet.cli",
        "serve",
        "--model",
        str(onnx_model),
        "--port",
        str(port),
    ]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            assert process.poll() is None, process.communicate()[1]
            time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "ERROR" not in stderr and "Traceback" not in stderr
    assert "stopped serving" in stderr
