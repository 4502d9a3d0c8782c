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

STAGES = (
    "ingest",
    "validate",
    "preprocess",
    "train",
    "evaluate",
    "compare",
    "export",
    "explain",
    "register",
    "trust",
    "transfer",
    "cross_study",
)
FAMILIES = {
    "cnn_lstm",
    "cnn_lstm_attention",
    "cnn_lstm_permuted",
    "mlp",
    "logistic_regression",
    "linear_svm",
    "hist_gbm",
    "logistic_regression_all_genes",
    "linear_svm_all_genes",
    "marker_score",
    "celltypist",
}


def _ran(output: str) -> list[str]:
    return [s for s in STAGES if f"Running stage '{s}'" in output]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("e2e"), TINY_PARAMS)
    result = run(["dvc", "repro"], project)
    assert _ran(result.stdout + result.stderr) == list(STAGES)
    return project


def test_repro_writes_metrics_for_network_and_baselines(project):
    metrics = json.loads((project / "metrics/evaluate.json").read_text())
    for name in (
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "pr_auc",
        "balanced_accuracy",
        "brier",
        "ece",
    ):
        assert 0.0 <= metrics["test"][name] <= 1.0
    assert metrics["test"]["roc_auc"] > 0.6
    assert (
        metrics["test"]["brier"] <= metrics["test_uncalibrated"]["brier"] + 0.02
    )  # calibration does not make it worse
    comparison = json.loads((project / "metrics/comparison.json").read_text())
    assert set(comparison["models"]) == FAMILIES
    # grouped 3-fold CV by sample, one seed: every sample tested once, in a fold holding both classes
    assert comparison["context"]["cv_folds"] == 3
    # one post-hoc step for all: every fit cut where its own validation cells put the cut
    assert comparison["context"]["threshold_rule"] == "youden"
    assert len({f["threshold"] for f in comparison["fits"]}) > 1
    genes = {family: entry["genes"] for family, entry in comparison["models"].items()}
    assert genes["logistic_regression_all_genes"]["genes_read"] > genes["logistic_regression"]["genes_read"]
    assert (
        comparison["models"]["cnn_lstm"]["n_fits"]
        == comparison["models"]["logistic_regression"]["n_fits"]
        == 3
    )
    split = json.loads((project / "data/processed/summary.json").read_text())
    every_sample = sorted(s for part in ("train", "val", "test") for s in split[part]["samples"])
    assert comparison["context"]["test_samples"] == comparison["paired"]["samples"] == every_sample
    assert metrics["conformal"]["coverage"] == comparison["context"]["coverage"] == 0.9
    paired = comparison["paired"]["families"]
    assert set(paired) == FAMILIES - {"cnn_lstm"} and comparison["paired"]["reference"] == "cnn_lstm"
    for entry in paired.values():
        for metric in ("roc_auc", "pr_auc"):
            figures = entry[metric]
            # each of the three is rounded to FIGURE_DIGITS on its own: within two units of the fourth decimal
            assert figures["difference"] == pytest.approx(
                figures["pooled"] - figures["reference_pooled"], abs=1.1e-4
            )
            assert figures["low"] <= figures["high"]
            assert figures["verdict"] == (
                "better" if figures["low"] > 0 else "worse" if figures["high"] < 0 else "level"
            )
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], project).stdout)
    files = next(iter(shown.values()))["data"]
    assert {"metrics/evaluate.json", "metrics/validation.json", "metrics/comparison.json"} <= set(files)
    # sweeps choose on the validation cells: the same metric set as the test report, other cells
    validation = json.loads((project / "metrics/validation.json").read_text())
    assert set(validation["validation"]) - {"n_val_cells", "n_val_samples"} == set(metrics["test"]) - {
        "n_test_cells",
        "n_test_samples",
    }
    assert validation["validation"]["roc_auc"] != metrics["test"]["roc_auc"]
    for name in ("roc_pr", "model_comparison", "calibration", "embedding", "confusion", "training_curves"):
        assert (project / f"reports/figures/{name}.png").stat().st_size > 10_000
    report = (project / "reports/comparison.md").read_text()
    assert "| celltypist |" in report and "Per held-out sample" in report
    assert "ROC-AUC vs cnn_lstm (Δ [95% CI])" in report and "**" not in report.split("## Does")[0]
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
        "print(json.dumps({'version': str(v.version), 'params': r.data.params, 'metrics': r.data.metrics, "
        "'tags': r.data.tags, 'figures': arts, 'status': r.info.status}))\n"
    )
    info = json.loads(run([sys.executable, "-c", code], project).stdout.strip().splitlines()[-1])
    assert info["version"] == "1" and info["status"] == "FINISHED"
    assert info["params"]["train.learning_rate"] == "0.001"
    assert {
        "test_f1",
        "test_roc_auc",
        "test_brier",
        "test_ece",
        "test_uncalibrated_ece",
        "test_conformal_coverage_persister",
        "test_conformal_coverage_non_persister",
        "calibration_scale",
        "onnx_parity_max_abs_diff",
        "val_loss",
    } <= set(info["metrics"])
    assert {"git_commit", "data_hash", "params_hash", "model_family", "dvc_raw_md5"} <= set(info["tags"])
    assert info["tags"]["run_kind"] == "deployable"
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    raw_md5 = next(o["md5"] for o in lock["stages"]["ingest"]["outs"] if o["path"] == "data/raw/cells.h5ad")
    assert info["tags"]["dvc_raw_md5"] == raw_md5  # the run traces back to the DVC-versioned raw data
    assert info["tags"]["git_commit"] != "unknown"
    assert sorted(info["figures"]) == [
        "figures/attributions.png",
        "figures/calibration.png",
        "figures/confusion.png",
        "figures/embedding.png",
        "figures/ood_distance.png",
        "figures/training_curves.png",
    ]


COMPARISON_RUNS = (
    "import mlflow, json\n"
    "mlflow.set_tracking_uri('sqlite:///mlruns/mlflow.db')\n"
    "runs = mlflow.search_runs(experiment_names=['oncopersistnet'], "
    "filter_string=\"tags.run_kind = 'comparison'\")\n"
    "cols = [c for c in runs.columns if c.startswith(('metrics.', 'tags.'))]\n"
    "print(json.dumps(runs[cols].to_dict('records')))\n"
)


def _comparison_runs(project):
    return json.loads(run([sys.executable, "-c", COMPARISON_RUNS], project).stdout.strip().splitlines()[-1])


def test_every_model_family_is_an_mlflow_run_with_the_same_metric_names(project):
    runs = _comparison_runs(project)
    assert {r["tags.model_family"] for r in runs} == FAMILIES and len(runs) == len(FAMILIES)
    metric_names = [{k for k, v in r.items() if k.startswith("metrics.test_") and v == v} for r in runs]
    assert all(names == metric_names[0] for names in metric_names)
    assert {
        "metrics.test_f1",
        "metrics.test_f1_std",
        "metrics.test_mcc",
        "metrics.test_brier",
        "metrics.test_ece",
        "metrics.test_conformal_coverage_persister",
        "metrics.test_conformal_coverage_non_persister",
        "metrics.test_conformal_both_fraction",
        "metrics.test_conformal_empty_fraction_std",
    } <= metric_names[0]
    for key in ("tags.data_hash", "tags.params_hash", "tags.git_commit", "tags.comparison_id"):
        assert len({r[key] for r in runs}) == 1 and runs[0][key]


TRANSFER_RUNS = (
    "import json, mlflow\n"
    "mlflow.set_tracking_uri('sqlite:///mlruns/mlflow.db')\n"
    "runs = mlflow.search_runs(experiment_names=['oncopersistnet'], "
    "filter_string=\"tags.run_kind = 'transfer'\", output_format='list')\n"
    "print(json.dumps([{'tags': r.data.tags, 'metrics': r.data.metrics} for r in runs]))\n"
)


def test_transfer_explain_and_cross_study_outputs_are_tracked(project):
    transfer = json.loads((project / "metrics/transfer.json").read_text())
    assert "parent_model_uri" not in transfer and "registration" not in transfer  # git-tracked: figures only
    # the DVC outputs hold no registry version or run; the undeclared record does
    adapted = json.loads((project / "models/transfer/transfer.json").read_text())
    assert not {"parent_model_uri", "registration"} & set(adapted) and adapted["study"] == transfer["study"]
    record = json.loads((project / "models/transfer_registration.json").read_text())
    assert record["parent_model_uri"] == "models:/oncopersistnet/1"
    assert record["registration"]["model_name"] == "oncopersistnet-gbm"
    assert transfer["study"]["dataset"] == "gbm" and set(transfer["trained_on_new_data_only"]) == {
        "logistic_regression"
    }
    assert 0.0 <= transfer["zero_shot"]["roc_auc"] <= 1.0 and 0.0 <= transfer["fine_tuned"]["roc_auc"] <= 1.0
    runs = json.loads(run([sys.executable, "-c", TRANSFER_RUNS], project).stdout.strip().splitlines()[-1])
    assert len(runs) == 1 and runs[0]["tags"]["parent_model_uri"] == "models:/oncopersistnet/1"
    assert {"zero_shot_roc_auc", "test_roc_auc", "new_data_logistic_regression_roc_auc"} <= set(
        runs[0]["metrics"]
    )
    assert (project / "models/transfer/oncopersistnet.onnx").exists()
    explain = json.loads((project / "metrics/explain.json").read_text())
    # The tiny model's ranking is not judged here (tests/test_explain.py checks recovery of planted genes);
    # the stage must score it against the simulator's truth and the shipped signatures.
    planted = explain["planted"]
    assert (
        planted["k"] == 50 and 0.0 <= planted["precision_at_k"] <= 1.0 and 0.0 < planted["chance_rate"] < 1.0
    )
    assert 0 < explain["cells"] <= 200 and len(explain["top_genes"]["global"]) == 50 and explain["signatures"]
    cross = json.loads((project / "metrics/cross_study.json").read_text())
    assert cross and (project / "reports/cross_study.md").read_text().startswith("# Cross-study")


def test_champion_classifies_new_cells_with_onnxruntime(project):
    run(
        [
            "oncopersistnet",
            "simulate",
            "--output",
            "new.h5ad",
            "--cells",
            "200",
            "--genes",
            "300",
            "--samples",
            "2",
            "--seed",
            "99",
            "--unlabelled",
        ],
        project,
    )
    result = run(
        ["oncopersistnet", "predict", "--input", "new.h5ad", "--output", "pred.csv", "--no-progress"], project
    )
    summary = json.loads(result.stdout)
    assert summary["cells"] == 200 and summary["model"] == "models:/oncopersistnet@champion"
    table = pd.read_csv(project / "pred.csv")
    assert len(table) == 200 and set(table["predicted_label"]) <= {
        "persister",
        "non-persister",
        "uncertain",
        "no_call",
    }
    # labels follow the conformal sets: a singleton is the call, anything else is uncertain
    singleton = table["prediction_set"].isin(["persister", "non-persister"])
    assert (table.loc[singleton, "predicted_label"] == table.loc[singleton, "prediction_set"]).all()
    assert (
        table.loc[~singleton & table["persister_probability"].notna(), "predicted_label"] == "uncertain"
    ).all()
    assert summary["uncertain"] == int((table["predicted_label"] == "uncertain").sum())
    assert summary["coverage"] == 0.9 and summary["out_of_distribution"] == int(
        table["out_of_distribution"].sum()
    )


def test_trust_stage_flags_other_worlds_more_than_held_out_cells(project):
    trust = json.loads((project / "metrics/trust.json").read_text())
    rates = {key: figures["ood_fraction_of_called"] for key, figures in trust["datasets"].items()}
    assert set(rates) == {"same_world", "other_world", "other_world_control", "external", "external_control"}
    # read against its control: cells of the training world with only the genes the other world measured
    assert rates["same_world"] < 0.1 and rates["other_world"] > rates["other_world_control"] + 0.2
    assert (project / "reports/figures/ood_distance.png").stat().st_size > 10_000


def test_second_repro_does_nothing(project):
    result = run(["dvc", "repro"], project)
    assert _ran(result.stdout + result.stderr) == []
    assert "up to date" in run(["dvc", "status"], project).stdout


def test_changing_the_gate_reruns_only_register_and_what_builds_on_it(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["register"]["min_f1"] = 0.999
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run(["dvc", "repro"], project)
    # transfer adapts the version register creates, and faces the same gate
    assert _ran(result.stdout + result.stderr) == ["register", "transfer"]
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


def test_dvc_experiment_runs_show_up_in_mlflow_under_their_name(project):
    """`dvc exp run --temp` runs in a copy under .dvc/tmp/exps; its runs must still land in this project's
    store."""
    before = len(_comparison_runs(project))
    run(["dvc", "exp", "run", "--temp", "--name", "lr-probe", "-S", "train.learning_rate=0.003"], project)
    assert "lr-probe" in run(["dvc", "exp", "list", "--all-commits"], project).stdout
    runs = _comparison_runs(project)
    tagged = [r for r in runs if r.get("tags.dvc_experiment") == "lr-probe"]
    assert len(runs) == before + len(FAMILIES) and {r["tags.model_family"] for r in tagged} == FAMILIES
    code = (
        "import mlflow\nmlflow.set_tracking_uri('sqlite:///mlruns/mlflow.db')\n"
        "r = mlflow.search_runs(experiment_names=['oncopersistnet'], filter_string="
        "\"tags.run_kind = 'deployable' and tags.dvc_experiment = 'lr-probe'\")\n"
        "print(len(r), r['params.train.learning_rate'].iloc[0], r['tags.mlflow.runName'].iloc[0])\n"
    )
    count, lr, name = run([sys.executable, "-c", code], project).stdout.strip().splitlines()[-1].split()
    assert count == "1" and lr == "0.003" and name.startswith("lr-probe/")
    champion = (
        "import mlflow\nfrom mlflow import MlflowClient\nmlflow.set_tracking_uri('sqlite:///mlruns/mlflow.db')\n"
        "print(MlflowClient().get_model_version_by_alias('oncopersistnet', 'champion').version)\n"
    )
    assert (
        run([sys.executable, "-c", champion], project).stdout.strip().splitlines()[-1] == "1"
    )  # experiments never promote


def test_champion_has_a_model_card_and_loads_through_mlflow_pyfunc(project):
    code = (
        "import json, mlflow, numpy as np, pandas as pd\n"
        "mlflow.set_tracking_uri('sqlite:///mlruns/mlflow.db')\n"
        "from oncopersistnet.registry import show_version\n"
        "from oncopersistnet.registry.resolve import load_model\n"
        "card = show_version('oncopersistnet', 'champion')\n"
        "onnx_model = load_model('models:/oncopersistnet@champion')\n"
        "x = np.random.default_rng(0).poisson(2.0, size=(7, len(onnx_model.genes))).astype(np.float32)\n"
        "pyfunc = mlflow.pyfunc.load_model('models:/oncopersistnet@champion')\n"
        "out = pyfunc.predict(pd.DataFrame(x, columns=onnx_model.genes))['persister_probability']\n"
        "print(json.dumps({'card': card, 'pyfunc': np.asarray(out).tolist(), "
        "'ort': onnx_model.predict_proba(x).tolist(), 'ood': onnx_model.ood_threshold}))\n"
    )
    info = json.loads(run([sys.executable, "-c", code], project).stdout.strip().splitlines()[-1])
    assert info["pyfunc"] == pytest.approx(
        info["ort"], abs=1e-6
    )  # the MLflow way gives the same probabilities
    card = info["card"]
    assert (
        "model card" in card["description"]
        and "Known limits" in card["description"]
        and "Intended use" in card["description"]
    )
    # the card carries the OOD threshold and the conformal coverage reached on the test cells
    assert (
        "**Uncertainty.** `predict` labels a cell by its conformal prediction set at 90% coverage"
        in (card["description"])
    )
    assert card["tags"]["ood_threshold"] == f"{info['ood']:.4f}"
    registry = json.loads((project / "models/registry.json").read_text())  # v2: the same ONNX graph as v1
    coverage = registry["candidate_test_metrics"]["conformal_coverage_persister"]
    assert card["tags"]["conformal_coverage_persister"] == f"{coverage:.4f}"
    tags = card["tags"]
    for key in (
        "data_hash",
        "params_hash",
        "n_genes",
        "calibration",
        "comparison_f1",
        "intended_use",
        "known_limits",
        "training_samples",
    ):
        assert tags[key], key
    assert "±" in tags["comparison_roc_auc"] and json.loads(tags["calibration"])["method"] == "platt"
