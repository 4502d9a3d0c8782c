"""The README's worked example on real data, end to end.

Glioblastoma slices from 5 patients, panobinostat vs vehicle (Zhao et al. 2021;
the lemur package's 5,000 x 300 subset, in data/external/). Not a persister
label: the test checks the pipeline runs on a real user file with a label
mapping, a split by patient and a 300-gene panel, and that predict maps an
Ensembl-ID copy of the file onto the model's gene symbols.
"""

from __future__ import annotations

import json

import anndata as ad
import pytest
import yaml
from helpers import ROOT, make_project, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gbm_project(tmp_path_factory):
    example = yaml.safe_load((ROOT / "examples/gbm_params.yaml").read_text())
    project = make_project(tmp_path_factory.mktemp("gbm"), example)
    run(["dvc", "repro"], project)
    return project


def test_pipeline_runs_on_the_real_dataset(gbm_project):
    split = (gbm_project / "data/processed/summary.json").read_text()
    summary = json.loads(split)
    patients = [p for name in ("train", "val", "test") for p in summary[name]["samples"]]
    assert sorted(patients) == ["PW030", "PW032", "PW034", "PW036", "PW040"]  # each patient in one split
    metrics = json.loads((gbm_project / "metrics/evaluate.json").read_text())
    assert metrics["test"]["n_test_cells"] == 1000
    comparison = json.loads((gbm_project / "metrics/comparison.json").read_text())
    assert comparison["context"]["test_samples"] == summary["test"]["samples"]
    assert comparison["models"]["logistic_regression"]["roc_auc"]["mean"] > 0.7
    import hashlib

    original = hashlib.md5(
        (gbm_project / "data/external/gbm_panobinostat_zhao2021_lemur.h5ad").read_bytes()
    ).hexdigest()
    assert summary["input_md5"] == original  # the run is tagged with the user's original file
    registry = json.loads((gbm_project / "models/registry.json").read_text())
    assert registry["model_name"] == "oncopersistnet-gbm" and registry["alias"] == "champion"


def test_predict_maps_ensembl_ids_onto_the_models_symbols(gbm_project):
    cells = ad.read_h5ad(gbm_project / "data/external/gbm_panobinostat_zhao2021_lemur.h5ad")[:300]
    cells.write_h5ad(gbm_project / "symbols.h5ad")
    by_id = cells.copy()
    by_id.var_names = [f"{gene_id}.1" for gene_id in cells.var["gene_id"]]  # versioned Ensembl IDs
    by_id.write_h5ad(gbm_project / "ensembl.h5ad")
    figures = {}
    for name in ("symbols", "ensembl"):
        result = run(
            [
                "oncopersistnet",
                "predict",
                "--input",
                f"{name}.h5ad",
                "--output",
                f"{name}.csv",
                "--no-progress",
                "--model",
                "models:/oncopersistnet-gbm@champion",
            ],
            gbm_project,
        )
        figures[name] = json.loads(result.stdout)
    assert (
        figures["symbols"]["genes_matched"] == 300
        and figures["symbols"]["genes_matched_before_mapping"] == 300
    )
    assert figures["ensembl"]["genes_matched_before_mapping"] == 0
    assert figures["ensembl"]["genes_matched"] >= 285  # all but genes whose ID maps to a newer symbol
    assert (gbm_project / "ensembl.csv").read_text().count("\n") == 301
