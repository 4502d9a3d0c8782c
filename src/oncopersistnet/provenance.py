"""The tags that tie an MLflow run of the pipeline (train's, compare's) to git, DVC and the data."""

from __future__ import annotations

from oncopersistnet import __version__
from oncopersistnet.config import MODEL_SECTIONS, Params
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.preprocessing.outputs import read_preprocess_summary
from oncopersistnet.tracking import dvc_experiment_name, git_commit


def run_provenance(
    params: Params, paths: ProjectPaths, model_family: str, *, run_kind: str
) -> dict[str, str]:
    """Tags every MLflow run of the pipeline carries, linking it to git, DVC and the data.

    ``run_kind`` is ``deployable`` for the train stage's run (the model export and
    register use) and ``comparison`` for the compare stage's one-run-per-model.
    """
    summary = read_preprocess_summary(paths)
    tags = {
        "model_family": model_family,
        "run_kind": run_kind,
        "data_hash": summary["data_hash"],
        "dvc_raw_md5": summary["raw_md5"],
        "input_md5": summary["input_md5"],
        "params_hash": params.hash(MODEL_SECTIONS),
        "git_commit": git_commit(paths.root),
        "oncopersistnet_version": __version__,
        "pipeline": "dvc",
    }
    if dvc_experiment_name():
        tags["dvc_experiment"] = dvc_experiment_name()
    return tags
