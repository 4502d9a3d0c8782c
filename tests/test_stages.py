"""Stage scripts on bad input: one readable error line, exit 1, and no output left behind.

These run the real scripts in a throw-away project folder, as DVC would.
"""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from helpers import TINY_PARAMS, deep_update, make_project, stage
from scipy import sparse

from oncopersistnet.atomic import FIGURE_DIGITS, rounded


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " ERROR " in line]


def test_ingest_with_a_missing_input_file(tmp_path):
    project = make_project(
        tmp_path, deep_update(TINY_PARAMS, {"data": {"input": "data/external/nope.h5ad"}}), git=False
    )
    result = stage("ingest", project, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = _error_lines(result.stderr)
    assert "ingest failed: data/external/nope.h5ad: no such file" in line
    assert not (project / "data/raw/cells.h5ad").exists()


def test_ingest_refuses_an_input_dvc_would_not_track(tmp_path):
    project = make_project(
        tmp_path, deep_update(TINY_PARAMS, {"data": {"input": "/tmp/elsewhere.h5ad"}}), git=False
    )
    result = stage("ingest", project, check=False)
    assert result.returncode == 1
    (line,) = _error_lines(result.stderr)
    assert "data.input: /tmp/elsewhere.h5ad is outside data/external/" in line


def test_ingest_with_a_user_file_maps_labels_and_drops_others(tmp_path, small_adata):
    user = small_adata.copy()
    user.obs = pd.DataFrame(
        {
            "condition": np.where(user.obs["label"] == "persister", "treated_day14", "day0"),
            "culture": user.obs["sample"].astype(str),
        },
        index=user.obs_names,
    )
    user.obs.iloc[:7, 0] = "day3"  # neither class: dropped and counted
    project = make_project(
        tmp_path,
        deep_update(
            dict(TINY_PARAMS),
            {
                "data": {
                    "input": "data/external/mine.h5ad",
                    "label_key": "condition",
                    "sample_key": "culture",
                    "persister_values": ["treated_day14"],
                    "non_persister_values": ["day0"],
                }
            },
        ),
        git=False,
    )
    user.write_h5ad(project / "data/external/mine.h5ad")
    result = stage("ingest", project)
    assert "dropped 7 cells" in result.stderr
    raw = ad.read_h5ad(project / "data/raw/cells.h5ad")
    assert raw.n_obs == small_adata.n_obs - 7
    assert set(raw.obs["label"]) == {"persister", "non-persister"}
    assert (raw.obs["sample"].to_numpy() == small_adata.obs["sample"].astype(str).to_numpy()[7:]).all()
    facts = json.loads((project / "metrics/data.json").read_text())  # what the README's data section says
    assert facts["cells"] == raw.n_obs and facts["simulate"] is None and facts["labels_flipped"] is None
    assert facts["persister_cells"] == int((raw.obs["label"] == "persister").sum())
    assert facts["library_size"]["min"] == raw.X.sum(axis=1).min()


def test_ingest_with_a_wrong_label_key(tmp_path, small_adata):
    project = make_project(
        tmp_path,
        deep_update(TINY_PARAMS, {"data": {"input": "data/external/mine.h5ad", "label_key": "status"}}),
        git=False,
    )
    small_adata.write_h5ad(project / "data/external/mine.h5ad")
    result = stage("ingest", project, check=False)
    assert result.returncode == 1
    (line,) = _error_lines(result.stderr)
    assert "obs has no column 'status' (data.label_key); columns are: sample, condition, label" in line


def _bad_inputs(small_adata):
    """(file name, writer, expected message) for inputs ingest must refuse in one line."""

    def unknown(path):
        path.write_text("whatever")

    def truncated(path):
        small_adata.write_h5ad(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    def no_sample_column(path):
        bad = small_adata.copy()
        bad.obs = bad.obs.drop(columns=["sample"])
        bad.write_h5ad(path)

    def duplicated_barcodes(path):
        table = pd.DataFrame(
            small_adata.X[:4].toarray(),
            index=["AAAC-1", "AAAC-1", "GGTT-1", "CCAA-1"],
            columns=small_adata.var_names,
        )
        table.to_csv(path)

    def empty(path):
        small_adata[:0].copy().write_h5ad(path)

    def missing_sample_values(path):
        bad = small_adata.copy()
        bad.obs["sample"] = bad.obs["sample"].astype(object)
        bad.obs.iloc[[3, 9], bad.obs.columns.get_loc("sample")] = None
        bad.write_h5ad(path)

    return [
        ("cells.foo", unknown, "unknown format"),
        ("cut.h5ad", truncated, "cut.h5ad"),
        ("nosample.h5ad", no_sample_column, "obs has no column 'sample' (data.sample_key)"),
        ("dups.csv", duplicated_barcodes, "AAAC-1"),
        ("empty.h5ad", empty, "empty"),
        ("nosamplevalue.h5ad", missing_sample_values, "2 cells have no 'sample' value"),
    ]


@pytest.mark.parametrize("case", range(6))
def test_ingest_refuses_bad_files_in_one_line_and_writes_nothing(tmp_path, small_adata, case):
    name, write, message = _bad_inputs(small_adata)[case]
    project = make_project(
        tmp_path, deep_update(TINY_PARAMS, {"data": {"input": f"data/external/{name}"}}), git=False
    )
    write(project / "data/external" / name)
    result = stage("ingest", project, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-1500:]
    (line,) = _error_lines(result.stderr)
    assert message in line, line
    assert not (project / "data/raw").exists() or not any((project / "data/raw").iterdir())


def _write_raw(project, adata):
    (project / "data/raw").mkdir(parents=True, exist_ok=True)
    adata.write_h5ad(project / "data/raw/cells.h5ad")


def test_validate_stops_bad_data_with_a_readable_list(tmp_path, small_adata):
    project = make_project(tmp_path, TINY_PARAMS, git=False)
    bad = small_adata.copy()
    X = bad.X.toarray().astype(np.float32)
    X[5, 3] = -4
    X[9, 0] = np.nan
    bad.X = sparse.csr_matrix(X)
    bad.obs["label"] = bad.obs["label"].astype(str)
    bad.obs.iloc[2, bad.obs.columns.get_loc("label")] = "resistant"
    _write_raw(project, bad)
    result = stage("validate", project, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    for expected in ("n_negative", "n_nonfinite", "label", small_adata.obs_names[5], "resistant"):
        assert expected in result.stderr, expected
    assert not (project / "data/validated/cells.h5ad").exists()
    assert (project / "reports/validation.json").exists()  # the report is kept to read


def test_validate_passes_good_data_and_writes_docs(tmp_path):
    project = make_project(tmp_path, TINY_PARAMS, git=False)
    stage("ingest", project)
    stage("validate", project)
    assert (project / "data/validated/cells.h5ad").exists()
    assert (project / "reports/validation_docs/index.html").exists()


def test_preprocess_fits_on_training_samples_only(tmp_path, small_adata):
    """Changing only test cells must leave every fitted statistic unchanged (no leakage)."""
    project = make_project(tmp_path, TINY_PARAMS, git=False)
    (project / "data/validated").mkdir(parents=True)
    small_adata.write_h5ad(project / "data/validated/cells.h5ad")
    stage("preprocess", project)
    split = pd.read_csv(project / "data/processed/split.csv")
    signal = json.loads((project / "metrics/training_signal.json").read_text())
    train_totals = small_adata.X[(split["split"] == "train").to_numpy()].sum(axis=1)
    assert signal["cells"] == (split["split"] == "train").sum()
    assert signal["counts"]["min"] == train_totals.min()  # every gene is a model gene on training cells
    with np.load(project / "models/preprocessor.npz") as first:
        before = {k: first[k] for k in first.files}

    changed = small_adata.copy()
    is_test = (split["split"] == "test").to_numpy()
    X = changed.X.toarray()
    X[is_test] = X[is_test] * 5 + 3  # wildly different test cells
    changed.X = sparse.csr_matrix(X)
    changed.write_h5ad(project / "data/validated/cells.h5ad")
    stage("preprocess", project)
    with np.load(project / "models/preprocessor.npz") as second:
        for key, value in before.items():
            assert np.array_equal(value, second[key]), f"{key} changed when only test cells changed"
    assert pd.read_csv(project / "data/processed/split.csv")["split"].equals(split["split"])


@pytest.mark.parametrize("name", ["train", "evaluate", "export", "register"])
def test_later_stages_say_what_is_missing(tmp_path, name):
    project = make_project(tmp_path, TINY_PARAMS, git=False)
    result = stage(name, project, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert len(_error_lines(result.stderr)) == 1


def _sets_by_hand(val_p, val_y, p, y, coverage):
    """Class-conditional split conformal from its definition (no project code): per class, the
    ceil((n + 1) * coverage)-th smallest validation score 1 - p(true class); a class is in a cell's
    set when its score is at most that quantile. Returns the quantiles and the test-cell figures."""
    quantile = []
    for k in (0, 1):
        scores = np.sort((1 - val_p if k == 1 else val_p)[val_y == k])
        quantile.append(scores[int(np.ceil((scores.size + 1) * coverage)) - 1])
    has_non_persister, has_persister = p <= quantile[0], 1 - p <= quantile[1]
    covered = np.where(y == 1, has_persister, has_non_persister)
    return quantile, {
        "coverage_non_persister": covered[y == 0].mean(),
        "coverage_persister": covered[y == 1].mean(),
        "coverage_overall": covered.mean(),
        "singleton_fraction": (has_persister != has_non_persister).mean(),
        "both_fraction": (has_persister & has_non_persister).mean(),
        "empty_fraction": (~has_persister & ~has_non_persister).mean(),
    }


def test_evaluate_and_compare_report_conformal_coverage_on_test_cells(tmp_path):
    """Sets calibrated on validation cells, judged on test cells, in the metrics files and in MLflow."""
    import json

    import mlflow
    from sklearn.linear_model import LogisticRegression

    from oncopersistnet.config import load_params
    from oncopersistnet.data.cells import Cells
    from oncopersistnet.model import load_checkpoint, predict_proba
    from oncopersistnet.paths import ProjectPaths

    coverage = 0.85  # not the shipped value: the param is what counts
    project = make_project(
        tmp_path,
        deep_update(
            TINY_PARAMS,
            {
                "predict": {"coverage": coverage},
                # the pipeline's split: seed train.seed of the comparison is the deployed model
                "compare": {"models": ["cnn_lstm", "logistic_regression"], "cv_folds": 0, "n_seeds": 2},
            },
        ),
    )
    for name in ("ingest", "validate", "preprocess", "train", "evaluate", "compare"):
        stage(name, project)
    paths, params = ProjectPaths(project), load_params(project / "params.yaml")
    val, test = Cells.load(paths.features("val")), Cells.load(paths.features("test"))

    # evaluate: the deployed network's calibrated probabilities
    network = load_checkpoint(paths.model)
    val_p, test_p = (predict_proba(network, c.X).astype(np.float64) for c in (val, test))
    quantile, figures = _sets_by_hand(val_p, val.y, test_p, test.y, coverage)
    conformal = json.loads(paths.evaluate_metrics.read_text())["conformal"]
    assert conformal["coverage"] == coverage
    # the metrics files hold figures at FIGURE_DIGITS significant digits (atomic.write_metrics_json)
    assert conformal["quantile_non_persister"] == rounded(quantile[0])
    assert conformal["quantile_persister"] == rounded(quantile[1])
    assert (conformal["n_calibration_non_persister"], conformal["n_calibration_persister"]) == (
        int((val.y == 0).sum()),
        int((val.y == 1).sum()),
    )
    for name, value in figures.items():
        assert conformal[name] == rounded(value), name

    # compare: every fit calibrated on its own validation cells
    comparison = json.loads(paths.comparison_metrics.read_text())
    fits = {(f["model"], f["seed"]): f["conformal"] for f in comparison["fits"]}
    assert fits["cnn_lstm", 0] == rounded(figures)  # train.seed is the deployed model
    train = Cells.load(paths.features("train"))
    regression = LogisticRegression(
        C=params.compare.logistic_c, class_weight="balanced", max_iter=5000, random_state=0
    ).fit(train.X, train.y)
    regression_p = {name: regression.predict_proba(c.X)[:, 1] for name, c in (("val", val), ("test", test))}
    _, regression_figures = _sets_by_hand(regression_p["val"], val.y, regression_p["test"], test.y, coverage)
    assert fits["logistic_regression", 0] == rounded(regression_figures)
    summary = comparison["models"]["cnn_lstm"]["conformal"]
    persister = [fits["cnn_lstm", seed]["coverage_persister"] for seed in (0, 1)]
    # summarised from the unrounded fits, so within one unit of the fourth digit of the rounded ones
    assert summary["coverage_persister"]["mean"] == pytest.approx(np.mean(persister), rel=2e-4)
    assert summary["coverage_persister"]["std"] == pytest.approx(np.std(persister, ddof=1), rel=2e-3)
    assert summary["coverage"] == comparison["context"]["coverage"] == coverage

    # MLflow: the training run and one run per family
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    trained = client.get_run(json.loads(paths.run_reference.read_text())["run_id"]).data
    assert trained.params["predict.coverage"] == str(coverage)
    for name, value in figures.items():
        assert trained.metrics[f"test_conformal_{name}"] == pytest.approx(value, abs=1e-9), name
    assert trained.metrics["test_conformal_quantile_persister"] == pytest.approx(quantile[1], abs=1e-9)
    runs = client.search_runs(
        [client.get_experiment_by_name(params.mlflow.experiment_name).experiment_id],
        filter_string="tags.run_kind = 'comparison'",
    )
    by_family = {r.data.tags["model_family"]: r for r in runs}
    family = by_family["cnn_lstm"]
    assert family.data.params["predict.coverage"] == str(coverage)
    # MLflow keeps the unrounded figures; the metrics file holds them rounded (FIGURE_DIGITS)
    assert (
        rounded(family.data.metrics["test_conformal_coverage_persister"])
        == summary["coverage_persister"]["mean"]
    )
    assert (
        rounded(family.data.metrics["test_conformal_coverage_persister_std"])
        == (summary["coverage_persister"]["std"])
    )
    history = client.get_metric_history(family.info.run_id, "fit_test_conformal_coverage_persister")
    fitted = [m.value for m in sorted(history, key=lambda m: m.step)]
    assert rounded(fitted) == persister
    assert np.mean(fitted) == pytest.approx(
        family.data.metrics["test_conformal_coverage_persister"], abs=1e-12
    )
    assert by_family["logistic_regression"].data.metrics["test_conformal_both_fraction"] == pytest.approx(
        regression_figures["both_fraction"]
    )


def _metrics_by_hand(y, p, threshold, bins):
    """The evaluate metric set from its definitions (sklearn for the ranking areas, numpy for the rest)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    called = p >= threshold
    tp, fp = (called & (y == 1)).sum(), (called & (y == 0)).sum()
    fn, tn = (~called & (y == 1)).sum(), (~called & (y == 0)).sum()
    precision, recall, specificity = tp / (tp + fp), tp / (tp + fn), tn / (tn + fp)
    index = np.minimum((p * bins).astype(int), bins - 1)  # equal-width bins, 1.0 in the last
    ece = sum(abs(y[index == b].mean() - p[index == b].mean()) * (index == b).sum() for b in set(index))
    return {
        "accuracy": (tp + tn) / len(y),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall),
        "roc_auc": roc_auc_score(y, p),
        "pr_auc": average_precision_score(y, p),
        "balanced_accuracy": (recall + specificity) / 2,
        "mcc": (tp * tn - fp * fn) / np.sqrt(float((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))),
        "brier": np.mean((p - y) ** 2),
        "ece": ece / len(y),
    }


def _floats(payload) -> list[float]:
    """Every float in a JSON document."""
    if isinstance(payload, dict):
        return [x for value in payload.values() for x in _floats(value)]
    if isinstance(payload, list):
        return [x for value in payload for x in _floats(value)]
    return [payload] if isinstance(payload, float) else []


def test_evaluate_writes_validation_metrics_for_model_selection(tmp_path):
    """metrics/validation.json: the deployed network on the validation cells at evaluate.threshold,
    the epoch early stopping kept, the same figures in MLflow; not the test figures."""
    import json

    import mlflow

    from oncopersistnet.data.cells import Cells
    from oncopersistnet.model import load_checkpoint, predict_proba
    from oncopersistnet.paths import ProjectPaths

    threshold, bins = 0.4, 5  # not the shipped values: the params are what count
    project = make_project(
        tmp_path, deep_update(TINY_PARAMS, {"evaluate": {"threshold": threshold, "calibration_bins": bins}})
    )
    for name in ("ingest", "validate", "preprocess", "train", "evaluate"):
        stage(name, project)
    paths = ProjectPaths(project)
    network = load_checkpoint(paths.model)
    val, test = Cells.load(paths.features("val")), Cells.load(paths.features("test"))
    val_p, test_p = (predict_proba(network, c.X).astype(np.float64) for c in (val, test))
    expected = _metrics_by_hand(val.y, val_p, threshold, bins)

    validation = json.loads(paths.validation_metrics.read_text())
    evaluate = json.loads(paths.evaluate_metrics.read_text())
    # what a fresh clone rewrites must be the same bytes anywhere: figures at FIGURE_DIGITS digits
    for written in (validation, evaluate):
        assert _floats(written) and all(x == float(f"{x:.{FIGURE_DIGITS}g}") for x in _floats(written))
    for table in (paths.plots / "calibration" / "calibrated.csv", paths.evaluate_per_sample):
        cells = [c for line in table.read_text().splitlines()[1:] for c in line.split(",")]
        decimals = [c for c in cells if "." in c and c.replace(".", "").replace("-", "").isdigit()]
        assert decimals and all(len(c.lstrip("-0.").replace(".", "")) <= FIGURE_DIGITS for c in decimals)
    assert validation["model"] == evaluate["model"] == "cnn_lstm"
    assert set(validation["validation"]) == set(evaluate["test"]) - {"n_test_cells", "n_test_samples"} | {
        "n_val_cells",
        "n_val_samples",
    }
    for name, value in expected.items():
        assert validation["validation"][name] == rounded(value), name
    assert validation["validation"]["n_val_cells"] == len(val.y)
    assert validation["validation"]["n_val_samples"] == len(set(val.samples))
    # the test figures are other cells' figures
    assert validation["validation"]["roc_auc"] != pytest.approx(evaluate["test"]["roc_auc"], abs=1e-6)
    assert validation["validation"]["brier"] != pytest.approx(evaluate["test"]["brier"], abs=1e-6)
    assert evaluate["test"]["brier"] == rounded(_metrics_by_hand(test.y, test_p, threshold, bins)["brier"])

    # the epoch whose weights were kept, as the train stage logged it while training
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    trained = client.get_run(json.loads(paths.run_reference.read_text())["run_id"]).data.metrics
    history = pd.read_csv(paths.training_history)
    assert validation["training"] == {
        "best_epoch": int(trained["best_epoch"]),
        "best_val_loss": pytest.approx(rounded(trained["best_val_loss"]), rel=2e-4),
        "epochs_run": len(history),
    }
    for name, value in expected.items():
        assert trained[f"val_calibrated_{name}"] == pytest.approx(value, abs=1e-9), name
    # train's per-epoch validation curve is left whole (one point per epoch)
    assert len(
        client.get_metric_history(json.loads(paths.run_reference.read_text())["run_id"], "val_roc_auc")
    ) == len(history)
