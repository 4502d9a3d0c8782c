"""MLflow set-up shared by every stage: one store, one experiment, linked runs.

The default store is a sqlite database and an artifact folder inside the project
(``mlruns/``, git-ignored), so ``make ui`` shows exactly this project's runs.
``MLFLOW_TRACKING_URI`` (or ``mlflow.tracking_uri`` in params.yaml) points it at
a team server instead. The train stage opens the run; evaluate, export and
register reopen it by id (``ProjectPaths.run_reference``), so one run holds the whole
story of one model. Tags link MLflow to git and DVC: commit, data hash, params hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from oncopersistnet.atomic import write_json
from oncopersistnet.config import MlflowConfig
from oncopersistnet.errors import ConfigError, ModelError
from oncopersistnet.processes import owner_alive, process_owner

logger = logging.getLogger(__name__)

STORE_DIR = "mlruns"
# Tells the MLflow 3 UI to open the experiment on its runs table (model training),
# not on the GenAI traces dashboard it shows for experiments of unknown kind.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
# Which process holds a run open ("host:pid:start"), so a later start can tell a
# run whose process was SIGKILLed (it stays RUNNING forever) from a live one.
OWNER_TAG = "oncopersistnet.owner"
ENDED_BY_TAG = "oncopersistnet.ended_by"


def disable_telemetry() -> None:
    """No command may reach the network: switch MLflow's telemetry and download bars off."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def dvc_experiment_name() -> str:
    """Name of the DVC experiment this stage runs in (``dvc exp run``), or '' outside one."""
    return os.environ.get("DVC_EXP_NAME", "")


def store_root(project_root: Path) -> Path:
    """The project whose ``mlruns/`` holds the runs.

    ``dvc exp run --temp`` and queued experiments run in a copy under
    ``<project>/.dvc/tmp/exps/``, which has no (git-ignored) ``mlruns/``. DVC
    passes the original project root as ``DVC_ROOT`` to experiment stages, so
    their runs land beside the workspace's and both views agree.
    """
    if dvc_experiment_name() and os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"])
    return project_root


def resolve_tracking_uri(config: MlflowConfig, project_root: Path) -> str:
    """``MLFLOW_TRACKING_URI`` > params.yaml ``mlflow.tracking_uri`` > the project's sqlite store."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or config.tracking_uri
    if uri:
        return uri
    store = (store_root(project_root) / STORE_DIR).resolve()
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def use_tracking_uri(uri: str | None) -> None:
    """Point MLflow at ``uri`` (nothing when None), without creating an experiment.

    Only entry points call this (the CLI, the HTTP server's start-up): the store is
    a process-wide setting, so loaders read the one they were given and never change it.
    """
    if uri:
        disable_telemetry()
        import mlflow

        mlflow.set_tracking_uri(uri)


def configure_mlflow(config: MlflowConfig, project_root: Path = Path(".")) -> str:
    """Point MLflow at the store and experiment; return the experiment id.

    For the local store the experiment's artifact location is set explicitly, so
    no stray ``mlruns/`` appears wherever a command happens to run.
    """
    disable_telemetry()
    import mlflow

    uri = resolve_tracking_uri(config, project_root)
    check_store_reachable(uri)
    # Decide before set_tracking_uri, which also exports MLFLOW_TRACKING_URI.
    project_store = not os.environ.get("MLFLOW_TRACKING_URI") and not config.tracking_uri
    mlflow.set_tracking_uri(uri)
    try:
        experiment = mlflow.get_experiment_by_name(config.experiment_name)
        if experiment is None:
            artifact_location = None
            if project_store:
                artifact_location = (store_root(project_root) / STORE_DIR / "artifacts").resolve().as_uri()
            experiment_id = mlflow.create_experiment(
                config.experiment_name, artifact_location=artifact_location, tags=EXPERIMENT_TAGS
            )
        else:
            experiment_id = experiment.experiment_id
            for key, value in EXPERIMENT_TAGS.items():
                if experiment.tags.get(key) != value:
                    mlflow.MlflowClient().set_experiment_tag(experiment_id, key, value)
        artifact_location = mlflow.get_experiment(experiment_id).artifact_location
    except Exception as exc:  # any backend failure: say where, before hours of work
        raise ConfigError(
            f"MLflow tracking store {uri} is not usable: {exc.__class__.__name__}: {exc}"
        ) from exc
    check_artifact_location(artifact_location)
    mlflow.set_experiment(experiment_id=experiment_id)
    close_orphaned_runs(experiment_id)
    return experiment_id


def check_store_reachable(uri: str, timeout_s: float = 10.0) -> None:
    """Fail in seconds when an HTTP tracking server does not answer.

    MLflow's own client retries a refused connection with exponential back-off
    for minutes before it gives up; one plain request tells sooner. Any HTTP
    answer (even 401 or 404) means the server is there.
    """
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s).close()  # noqa: S310 - http(s) only
    except urllib.error.HTTPError:
        return  # it answered
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc.__class__.__name__
        raise ConfigError(
            f"MLflow tracking server {uri} is not reachable ({reason}); "
            "check MLFLOW_TRACKING_URI or mlflow.tracking_uri in params.yaml"
        ) from exc


def local_folder(uri: str) -> Path | None:
    """The folder on this machine behind an MLflow URI: a sqlite store's folder, a ``file://`` or plain path;
    None for a server or a remote store."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        return Path(unquote(uri[len("sqlite:///") :])).parent if uri.startswith("sqlite:///") else None
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return Path(uri) if parsed.scheme == "" else None


def check_artifact_location(location: str | None) -> None:
    """A local artifact folder must be writable now, not when the first model is logged after training."""
    folder = local_folder(location) if location else None
    if folder is None:
        return  # remote artifact stores answer for themselves
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"MLflow artifact folder {folder} is not writable ({exc.strerror or exc.__class__.__name__}); "
            "models and plots could not be logged"
        ) from exc


def close_orphaned_runs(experiment_id: str) -> list[str]:
    """End as KILLED every RUNNING run of this experiment whose process on this host is gone.

    SIGKILL (or a power cut) leaves no chance to close a run; without this it
    would show RUNNING in the UI forever. Runs of other hosts are left alone.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    closed = []
    try:
        running = client.search_runs(
            [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000
        )
    except Exception as exc:  # housekeeping: never the reason a stage fails
        logger.warning(
            "could not look for runs left RUNNING by killed processes (%s)", exc.__class__.__name__
        )
        return closed
    for run in running:
        owner = run.data.tags.get(OWNER_TAG)
        if owner and not owner_alive(owner):
            try:
                client.set_tag(
                    run.info.run_id,
                    ENDED_BY_TAG,
                    f"process {owner} died with the run open; closed by {process_owner()}",
                )
                client.set_terminated(run.info.run_id, status="KILLED")
            except Exception as exc:  # e.g. a shared server that lets us read but not end another user's run
                logger.warning(
                    "MLflow run %s was left RUNNING by a dead process; could not close it (%s)",
                    run.info.run_id,
                    exc.__class__.__name__,
                )
                continue
            closed.append(run.info.run_id)
            logger.warning(
                "MLflow run %s was left RUNNING by a process that died (%s); marked KILLED",
                run.info.run_id,
                owner,
            )
    return closed


def git_commit(project_root: Path = Path(".")) -> str:
    """Current commit, with ``-dirty`` when tracked files changed; ``unknown`` outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=project_root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=project_root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def data_hash(
    matrix: Any, labels: np.ndarray, samples: np.ndarray, *, genes: np.ndarray, cells: np.ndarray
) -> str:
    """Content hash of a labelled count matrix (independent of HDF5 file layout)."""
    from scipy import sparse

    digest = hashlib.sha256()
    csr = sparse.csr_matrix(matrix)
    csr.sort_indices()
    for array in (csr.indptr, csr.indices, csr.data.astype(np.float64)):
        digest.update(np.ascontiguousarray(array).tobytes())
    for names in (labels, samples, genes, cells):
        digest.update("\x1f".join(map(str, names)).encode())
    return digest.hexdigest()[:16]


def file_md5(path: Path) -> str:
    """md5 of a file, or of a folder's files in name order (a 10x directory), read in chunks."""
    digest = hashlib.md5()
    for item in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if item.is_file():
            digest.update(item.relative_to(path).as_posix().encode() if path.is_dir() else b"")
            with open(item, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def flatten_for_mlflow(values: Mapping[str, Any]) -> dict[str, str]:
    """MLflow params are strings; lists become compact JSON, None becomes 'null'."""
    return {key: json.dumps(value) if not isinstance(value, str) else value for key, value in values.items()}


def save_run_reference(path: Path, run_id: str, **provenance: str) -> None:
    """Record which MLflow run later stages log into, with the run's provenance tags."""
    write_json(path, {"run_id": run_id, **provenance})


def load_run_reference(path: Path) -> dict[str, str]:
    """The run reference written by the train stage (``run_id`` plus provenance)."""
    try:
        reference = json.loads(path.read_text())
        str(reference["run_id"])
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: missing or unreadable run reference; run the train stage first") from exc
    return reference


def load_run_id(path: Path) -> str:
    """The MLflow run id written by the train stage."""
    return str(load_run_reference(path)["run_id"])


@contextlib.contextmanager
def tracked_run(**start_run_kwargs: Any) -> Iterator[Any]:
    """``mlflow.start_run`` that records its owner process and always ends the run.

    FINISHED on success, KILLED on Ctrl-C or SIGTERM, FAILED on an error; never
    left RUNNING while this process lives (and :func:`close_orphaned_runs` ends
    it after a SIGKILL).
    """
    import mlflow

    run_id = start_run_kwargs.get("run_id")
    if run_id:
        from mlflow.exceptions import MlflowException

        try:
            if mlflow.get_run(run_id).info.lifecycle_stage == "deleted":
                raise ModelError(
                    f"MLflow run {run_id} was deleted; rerun the train stage (dvc repro -f -s train)"
                )
            run = mlflow.start_run(**start_run_kwargs)
        except MlflowException as exc:
            raise ModelError(
                f"MLflow run {run_id} cannot be reopened ({exc.__class__.__name__}: {exc})"
            ) from exc
    else:  # a new run is born with its owner: no instant in which a kill leaves an ownerless RUNNING run
        tags = dict(start_run_kwargs.pop("tags", None) or {}) | {OWNER_TAG: process_owner()}
        run = mlflow.start_run(tags=tags, **start_run_kwargs)
    try:
        if run_id:
            mlflow.set_tag(OWNER_TAG, process_owner())  # a reopened run: this process holds it now
        yield run
    except KeyboardInterrupt:
        mlflow.end_run("KILLED")
        raise
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run("FINISHED")


@contextlib.contextmanager
def resumed_run(run_id: str) -> Iterator[Any]:
    """Reopen the training run; a failure inside marks the run FAILED instead of leaving it RUNNING."""
    with tracked_run(run_id=run_id) as run:
        yield run


def log_params_once(values: Mapping[str, Any]) -> None:
    """Log params, tolerating a rerun with the same values.

    MLflow params are immutable. When a downstream stage reruns into the same run
    with a changed value (say a new decision threshold), the new value is kept as
    a tag ``param_update.<key>`` and a warning says so; the metrics logged next
    reflect the new value.
    """
    import mlflow

    run = mlflow.active_run()
    data = mlflow.get_run(run.info.run_id).data if run else None
    existing = data.params if data else {}
    tags = data.tags if data else {}
    fresh = {}
    for key, value in flatten_for_mlflow(values).items():
        update_tag = f"param_update.{key}"
        if key not in existing:
            fresh[key] = value
        elif existing[key] != value:
            logger.warning(
                "param %s changed from %s to %s since this run was trained", key, existing[key], value
            )
            mlflow.set_tag(update_tag, value)
        elif update_tag in tags:  # changed back to the logged value: the update no longer holds
            mlflow.delete_tag(update_tag)
    if fresh:
        mlflow.log_params(fresh)
