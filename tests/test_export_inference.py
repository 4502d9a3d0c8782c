"""ONNX export parity and the onnxruntime-only inference path."""

import json
import subprocess
import sys
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from conftest import CALL_RULE, dense, fit_fixture_trust
from scipy import sparse

from oncopersistnet.data.cells import Cells
from oncopersistnet.errors import InputDataError, ModelError
from oncopersistnet.export import export_onnx, parity_check
from oncopersistnet.inference import OnnxPersisterModel, match_genes, predict_file
from oncopersistnet.inference.align import aligned_block
from oncopersistnet.inference.writers import OUTPUT_COLUMNS
from oncopersistnet.registry.resolve import load_model


@pytest.fixture(scope="module")
def onnx_path(fitted, trained, trust, tmp_path_factory):
    pre, _, _ = fitted
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    selected = [str(g) for g in pre.genes_[pre.selected_]]
    export_onnx(
        pre,
        trained.model,
        path,
        trust=trust,
        metadata={
            "threshold": 0.5,
            "data_hash": "abc",
            "selected_genes": selected,
            "fit_samples": ["sim3-S01"],
        },
    )
    return path


def test_onnx_matches_pytorch_on_held_out_cells(fitted, trained, trust, onnx_path, small_adata, small_split):
    pre, _, _ = fitted
    counts = dense(small_adata.X[small_split == "test"])
    figures = parity_check(onnx_path, pre, trained.model, trust=trust, counts=counts, tolerance=1e-5)
    assert figures["parity_max_abs_diff"] <= 1e-5


def test_parity_check_fails_loudly_when_broken(fitted, trained, trust, onnx_path, small_adata):
    pre, _, _ = fitted
    other = type(trained.model)(**trained.model.config).eval()  # untrained weights
    with pytest.raises(ModelError, match="disagree"):
        parity_check(onnx_path, pre, other, trust=trust, counts=dense(small_adata.X[:50]), tolerance=1e-5)


def test_model_carries_its_genes_and_metadata(onnx_path, small_adata):
    model = OnnxPersisterModel(onnx_path)
    assert model.genes == list(small_adata.var_names)
    assert model.info()["data_hash"] == "abc" and model.threshold == 0.5


def test_dynamic_batch_and_empty_batch(onnx_path, small_adata):
    model = OnnxPersisterModel(onnx_path)
    counts = dense(small_adata.X[:7]).astype(np.float32)
    full = model.predict_proba(counts)
    assert full.shape == (7,)
    assert np.allclose(model.predict_proba(counts[:1]), full[:1], atol=1e-6)
    assert model.predict_proba(counts[:0]).shape == (0,)


def test_gene_matching_reports_and_refuses():
    match = match_genes(["B", "A", "X"], ["A", "B", "C", "D"])
    assert match.present.tolist() == [True, True, False, False] and match.describe().startswith("2 of 4")
    block = np.array([[1.0, 2.0, 3.0]])
    assert (
        np.array_equal(aligned_block(block, match)[0, :2], [2.0, 1.0])
        and np.isnan(aligned_block(block, match)[0, 2:]).all()
    )
    # most genes present, but not the ones the model reads after selection
    with pytest.raises(InputDataError, match="0 of 2 selected genes"):
        match_genes(["A", "B", "C"], ["A", "B", "C", "D", "E"], min_fraction=0.5, selected_genes=["D", "E"])
    # Ensembl IDs (with or without version) and any-case symbols map onto the model's symbols
    match = match_genes(
        ["ENSG00000141510.17", "ENSG00000012048", "axl"], ["TP53", "BRCA1", "AXL", "NGFR"], min_fraction=0.5
    )
    assert match.n_matched == 3 and match.n_matched_before_mapping == 0
    # two columns for one gene (an ID and its symbol) are summed, as at training
    summed = match_genes(["ENSG00000141510", "TP53"], ["TP53", "AXL"])
    assert aligned_block(np.array([[2.0, 5.0]]), summed)[0, 0] == 7.0
    with pytest.raises(
        InputDataError,
        match="Ensembl IDs and the model uses gene symbols: 0 of 2 genes matched before mapping, 0 after",
    ):
        match_genes(["ENSG00000000001", "ENSG00000000002"], ["TP53", "BRCA1"], min_fraction=0.5)


def _write_input(path, adata, genes=None):
    out = ad.AnnData(
        X=sparse.csr_matrix(adata.X),
        obs=pd.DataFrame(index=adata.obs_names),
        var=pd.DataFrame(index=genes if genes is not None else adata.var_names),
    )
    out.write_h5ad(path)
    return path


def test_predict_file_writes_one_row_per_cell_in_chunks(onnx_path, small_adata, tmp_path):
    model = OnnxPersisterModel(onnx_path)
    subset = small_adata[:123]
    src = _write_input(tmp_path / "in.h5ad", subset)
    summary = predict_file(model, src, tmp_path / "out.csv", chunk_size=50, progress=False, **CALL_RULE)
    table = pd.read_csv(tmp_path / "out.csv")
    assert list(table.columns) == list(OUTPUT_COLUMNS)
    assert table["cell_id"].tolist() == list(subset.obs_names)
    expected = model.predict_proba(dense(subset.X).astype(np.float32))
    assert np.allclose(table["persister_probability"], expected, atol=1e-5)
    assert summary["cells"] == 123 and summary["genes_matched"] == small_adata.n_vars


def test_predict_with_missing_and_shuffled_genes(onnx_path, small_adata, tmp_path):
    model = OnnxPersisterModel(onnx_path)
    keep = np.random.default_rng(0).permutation(small_adata.n_vars)[:250]  # 250 of 300 genes, shuffled
    subset = small_adata[:40, keep]
    summary = predict_file(
        model, _write_input(tmp_path / "in.h5ad", subset), tmp_path / "out.csv", progress=False, **CALL_RULE
    )
    assert summary["genes_matched"] == 250
    assert pd.read_csv(tmp_path / "out.csv")["persister_probability"].between(0, 1).all()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda X: X.__setitem__((3, 4), -2.0), "negative count -2.0 at cell"),
        (lambda X: X.__setitem__((1, 0), np.inf), "non-finite value inf at cell"),
        (lambda X: X.__setitem__((0, 0), np.nan), "non-finite value nan"),
    ],
)
def test_bad_counts_give_one_clear_error_and_no_output(onnx_path, small_adata, tmp_path, mutate, message):
    X = dense(small_adata.X[:10])
    mutate(X)
    bad = ad.AnnData(
        X=X, obs=pd.DataFrame(index=small_adata.obs_names[:10]), var=pd.DataFrame(index=small_adata.var_names)
    )
    bad.write_h5ad(tmp_path / "bad.h5ad")
    with pytest.raises(InputDataError, match=message):
        predict_file(
            OnnxPersisterModel(onnx_path),
            tmp_path / "bad.h5ad",
            tmp_path / "out.csv",
            progress=False,
            **CALL_RULE,
        )
    assert list(tmp_path.iterdir()) == [tmp_path / "bad.h5ad"]


def test_normalised_input_is_refused_unless_allowed(onnx_path, small_adata, tmp_path):
    model = OnnxPersisterModel(onnx_path)
    X = dense(small_adata.X[:10])
    logged = ad.AnnData(
        X=np.log1p(X),
        obs=pd.DataFrame(index=small_adata.obs_names[:10]),
        var=pd.DataFrame(index=small_adata.var_names),
    )
    logged.write_h5ad(tmp_path / "log.h5ad")
    with pytest.raises(InputDataError, match="look normalised, not raw counts: X holds non-integer values"):
        predict_file(model, tmp_path / "log.h5ad", tmp_path / "out.csv", progress=False, **CALL_RULE)
    assert not (tmp_path / "out.csv").exists()
    assert (
        predict_file(
            model,
            tmp_path / "log.h5ad",
            tmp_path / "out.csv",
            progress=False,
            allow_non_integer=True,
            **CALL_RULE,
        )["cells"]
        == 10
    )


def test_model_knows_its_selected_genes_and_fit_samples(onnx_path, fitted):
    pre, _, _ = fitted
    model = OnnxPersisterModel(onnx_path)
    assert model.selected_genes == [str(g) for g in pre.genes_[pre.selected_]]
    assert model.fit_samples == ["sim3-S01"]
    assert "selected_genes" not in model.info() and model.info()["n_selected_genes"] == len(pre.selected_)


def test_head_to_head_scores_only_unseen_cells_each_model_at_its_own_threshold(
    onnx_path, fitted, trained, trust, small_adata, tmp_path
):
    from oncopersistnet.evaluation import classification_metrics
    from oncopersistnet.registry.gate import HeadToHead, head_to_head

    pre, _, _ = fitted
    candidate = OnnxPersisterModel(onnx_path)  # threshold 0.5
    names = sorted(small_adata.obs["sample"].astype(str).unique())
    fit = [names[0], names[-1]]  # one untreated and one treated culture
    other = type(trained.model)(**trained.model.config).eval()  # untrained: a different, worse model
    export_onnx(
        pre, other, tmp_path / "champion.onnx", trust=trust, metadata={"threshold": 0.9, "fit_samples": fit}
    )
    champion = OnnxPersisterModel(tmp_path / "champion.onnx")

    counts = dense(small_adata.X).astype(np.float32)
    y = (small_adata.obs["label"] == "persister").to_numpy().astype(int)
    samples = small_adata.obs["sample"].astype(str).to_numpy()
    genes = np.asarray(small_adata.var_names)
    cells = Cells(X=counts, y=y, samples=samples, cell_ids=np.asarray(small_adata.obs_names), genes=genes)
    result = head_to_head(candidate, champion, "1", cells=cells)
    assert isinstance(result, HeadToHead)
    unseen = ~np.isin(samples, fit)
    assert result.n_cells == int(unseen.sum())
    expected_champion = classification_metrics(
        y[unseen], champion.predict_proba(counts[unseen]), threshold=0.9
    )
    expected_candidate = classification_metrics(
        y[unseen], candidate.predict_proba(counts[unseen]), threshold=0.5
    )
    for name in ("f1", "roc_auc", "recall"):
        assert result.champion[name] == pytest.approx(expected_champion[name])
        assert result.candidate[name] == pytest.approx(expected_candidate[name])
    assert result.candidate["roc_auc"] != result.champion["roc_auc"]

    seen_only = ~unseen
    reason = head_to_head(candidate, champion, "1", cells=cells.subset(seen_only))
    assert isinstance(reason, str) and "cannot be compared fairly" in reason
    # one gene short is already unfair to the champion (imputation, smaller library sizes)
    reason = head_to_head(candidate, champion, "1", cells=cells.with_X(counts[:, 1:], genes[1:]))
    assert isinstance(reason, str) and "needs genes these cells lack" in reason


def test_sparse_input_is_checked_without_densifying_everything(onnx_path, small_adata):
    from oncopersistnet.inference.predict import check_counts

    block = small_adata.X[:10].astype(np.float32).tocsr()
    block.data[7] = -3
    row = int(np.searchsorted(block.indptr, 7, side="right") - 1)
    with pytest.raises(
        InputDataError,
        match=(
            f"negative count -3.0 at cell '{small_adata.obs_names[row]}', "
            f"gene '{small_adata.var_names[block.indices[7]]}'"
        ),
    ):
        check_counts(
            block, np.asarray(small_adata.obs_names[:10]), np.asarray(small_adata.var_names), source="x"
        )


def test_wrong_namespace_and_unreadable_files(onnx_path, small_adata, tmp_path):
    model = OnnxPersisterModel(onnx_path)
    renamed = _write_input(
        tmp_path / "ens.h5ad", small_adata[:5], genes=[f"ENSG{i:011d}" for i in range(small_adata.n_vars)]
    )
    with pytest.raises(
        InputDataError, match="only 0 of 300 model genes found .*; 0 of 150 selected genes.*Ensembl IDs"
    ):
        predict_file(model, renamed, tmp_path / "out.csv", progress=False, **CALL_RULE)
    (tmp_path / "junk.h5ad").write_text("not hdf5")
    with pytest.raises(InputDataError, match="not a readable .h5ad"):
        predict_file(model, tmp_path / "junk.h5ad", tmp_path / "out.csv", progress=False, **CALL_RULE)
    with pytest.raises(InputDataError, match="no such file"):
        predict_file(model, tmp_path / "absent.h5ad", tmp_path / "out.csv", progress=False, **CALL_RULE)
    assert not (tmp_path / "out.csv").exists()


def test_output_must_be_csv_or_parquet(onnx_path, small_adata, tmp_path):
    src = _write_input(tmp_path / "in.h5ad", small_adata[:5])
    with pytest.raises(InputDataError, match="output must be a .csv or .parquet file"):
        predict_file(OnnxPersisterModel(onnx_path), src, tmp_path / "p.txt", progress=False, **CALL_RULE)
    assert not (tmp_path / "p.txt").exists()


def test_coverage_changes_sets_not_probabilities(onnx_path, small_adata, tmp_path):
    """A higher coverage widens the sets (more hold both classes, fewer are empty); same probabilities."""
    src = _write_input(tmp_path / "in.h5ad", small_adata[:60])
    model = OnnxPersisterModel(onnx_path)
    low = predict_file(model, src, tmp_path / "a.csv", progress=False, coverage=0.5, ood_warn_fraction=0.1)
    high = predict_file(model, src, tmp_path / "b.csv", progress=False, coverage=0.95, ood_warn_fraction=0.1)
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert a["persister_probability"].equals(b["persister_probability"])
    assert (low["coverage"], high["coverage"]) == (0.5, 0.95)
    # wider sets: at least as many hold both classes, at most as many are empty
    assert high["uncertain"] - high["empty_sets"] >= low["uncertain"] - low["empty_sets"]
    assert high["empty_sets"] <= low["empty_sets"]
    both = b["prediction_set"] == "non-persister|persister"
    assert (b.loc[both, "predicted_label"] == "uncertain").all()


def test_load_model_by_path_and_bad_references(onnx_path, tmp_path):
    assert load_model(str(onnx_path)).genes
    with pytest.raises(ModelError, match="no such model file"):
        load_model(str(tmp_path / "absent.onnx"))
    (tmp_path / "bad.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        load_model(str(tmp_path / "bad.onnx"))


def test_inference_path_never_imports_torch(onnx_path, small_adata, tmp_path):
    src = _write_input(tmp_path / "in.h5ad", small_adata[:20])
    code = (
        "import sys, json\n"
        "from oncopersistnet.cli import main\n"
        f"rc = main(['predict', '--input', {str(src)!r}, '--output', {str(tmp_path / 'o.csv')!r}, "
        f"'--model', {str(onnx_path)!r}, '--no-progress'])\n"
        "assert rc == 0, rc\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
    assert (tmp_path / "o.csv").exists()


def test_labels_follow_the_conformal_set_of_each_cell(onnx_path, small_adata, tmp_path):
    """Label = the set's class when it holds one, else uncertain; the set and the flag are in the rows."""
    model = OnnxPersisterModel(onnx_path)
    src = _write_input(tmp_path / "in.h5ad", small_adata)
    predict_file(model, src, tmp_path / "out.parquet", progress=False, **CALL_RULE)
    rows = pd.read_parquet(tmp_path / "out.parquet")
    assert (
        list(rows.columns)
        == [
            "cell_id",
            "persister_probability",
            "predicted_label",
            "prediction_set",
            "out_of_distribution",
            "ood_distance",
            "no_call_reason",
        ]
        == list(OUTPUT_COLUMNS)
    )
    probability = rows["persister_probability"].to_numpy(dtype=np.float64)
    q_non, q_pers = model.conformal.quantiles(CALL_RULE["coverage"])  # by hand: 1 - p_c <= q_c
    has_pers, has_non = 1 - probability <= q_pers, probability <= q_non
    expected = np.where(
        has_pers & ~has_non, "persister", np.where(has_non & ~has_pers, "non-persister", "uncertain")
    )
    assert (rows["predicted_label"].to_numpy() == expected).all()
    assert ((rows["prediction_set"] == "empty") == (~has_pers & ~has_non)).all()
    assert (rows["out_of_distribution"] == (rows["ood_distance"] > model.ood_threshold)).all()


def test_a_model_without_conformal_scores_falls_back_to_its_threshold():
    from oncopersistnet.inference.calls import DecisionRule, make_calls

    rule = DecisionRule(conformal=None, coverage=0.9, threshold=0.6, ood_threshold=None)
    calls = make_calls(
        np.array([0.59, 0.6, 0.9]), np.full(3, np.nan), np.array(["", "", "no signal"]), rule=rule
    )
    assert calls.predicted_label.tolist() == ["non-persister", "persister", "no_call"]
    assert calls.prediction_set.tolist() == ["", "", ""] and not calls.out_of_distribution.any()
    assert np.isnan(calls.persister_probability[2]) and calls.persister_probability[1] == np.float32(0.6)


def test_a_coverage_outside_0_1_is_refused_before_anything_is_written(onnx_path, tmp_path, small_adata):
    src = _write_input(tmp_path / "in.h5ad", small_adata[:20])
    with pytest.raises(InputDataError, match="coverage must lie strictly between 0 and 1, got 1.0"):
        predict_file(
            OnnxPersisterModel(onnx_path), src, tmp_path / "out.csv", coverage=1.0, ood_warn_fraction=0.1
        )
    assert not (tmp_path / "out.csv").exists()


def test_parquet_output_and_annotated_anndata_copy(onnx_path, small_adata, tmp_path):
    model = OnnxPersisterModel(onnx_path)
    subset = small_adata[:130].copy()
    subset.obs["batch"] = "b1"  # the user's own obs columns survive
    source = tmp_path / "in.h5ad"
    subset.write_h5ad(source)
    before = source.read_bytes()
    summary = predict_file(
        model,
        source,
        tmp_path / "out.parquet",
        chunk_size=50,
        progress=False,
        obs_output=tmp_path / "annotated.h5ad",
        **CALL_RULE,
    )
    table = pd.read_parquet(tmp_path / "out.parquet")
    assert list(table.columns) == list(OUTPUT_COLUMNS) and len(table) == 130
    expected = model.predict_proba(dense(subset.X).astype(np.float32))
    assert np.allclose(table["persister_probability"], expected, atol=1e-6)
    annotated = ad.read_h5ad(tmp_path / "annotated.h5ad")
    assert list(annotated.obs_names) == list(subset.obs_names) and (annotated.obs["batch"] == "b1").all()
    assert np.allclose(annotated.obs["persister_probability"], expected, atol=1e-6)
    assert annotated.obs["persister_label"].tolist() == table["predicted_label"].tolist()
    assert np.array_equal(dense(annotated.X), dense(subset.X))
    assert source.read_bytes() == before  # the input is never modified
    assert summary["obs_output"] == str(tmp_path / "annotated.h5ad")


def test_annotated_copy_needs_an_h5ad_input_and_a_new_file(onnx_path, small_adata, tmp_path):
    model = OnnxPersisterModel(onnx_path)
    source = _write_input(tmp_path / "in.h5ad", small_adata[:20])
    with pytest.raises(InputDataError, match="not over the input"):
        predict_file(model, source, tmp_path / "out.csv", progress=False, obs_output=source, **CALL_RULE)
    assert not (tmp_path / "out.csv").exists()
    table = tmp_path / "cells.csv"
    pd.DataFrame(
        dense(small_adata[:5].X), index=small_adata.obs_names[:5], columns=small_adata.var_names
    ).to_csv(table)
    with pytest.raises(InputDataError, match="is not one"):
        predict_file(
            model, table, tmp_path / "out.csv", progress=False, obs_output=tmp_path / "x.h5ad", **CALL_RULE
        )


# ------------------------------------------------------------ attention variant
@pytest.fixture(scope="module")
def attention_export(fitted, small_adata, small_split, tmp_path_factory):
    """A tiny attention CNN-LSTM trained on the fixture features, and its exported graph."""
    from dataclasses import replace

    from conftest import FAST_TRAIN

    from oncopersistnet.model import train_model

    pre, features, labels = fitted
    config = replace(FAST_TRAIN, architecture="cnn_lstm_attention")
    model = train_model(
        (features["train"], labels["train"]), (features["val"], labels["val"]), config, progress=False
    ).model
    path = tmp_path_factory.mktemp("onnx_attention") / "attention.onnx"
    attention_trust = fit_fixture_trust(pre, model, small_adata, small_split)
    export_onnx(
        pre,
        model,
        path,
        trust=attention_trust,
        metadata={"threshold": 0.5, "architecture": model.architecture},
    )
    model.trust = attention_trust
    return model, path


def test_attention_variant_exports_with_parity_at_batch_1_and_a_full_batch(
    fitted, attention_export, small_adata, small_split
):
    import onnx

    from oncopersistnet.model import CnnLstmAttentionClassifier, predict_proba

    pre, _, _ = fitted
    model, path = attention_export
    assert isinstance(model, CnnLstmAttentionClassifier)
    assert "Softmax" in {
        node.op_type for node in onnx.load(str(path)).graph.node
    }  # the pooling is in the graph
    counts = dense(small_adata.X[small_split == "test"]).astype(np.float32)
    assert len(counts) > 100
    onnx_model = OnnxPersisterModel(path)
    for batch in (counts[:1], counts):
        reference = predict_proba(model, pre.transform(batch.astype(np.float64)))
        assert np.allclose(onnx_model.predict_proba(batch), reference, atol=1e-5, rtol=0)
    # also single cells and missing genes
    figures = parity_check(path, pre, model, trust=model.trust, counts=counts, tolerance=1e-5)
    assert figures["parity_max_abs_diff"] <= 1e-5
    untrained = CnnLstmAttentionClassifier(**model.config).eval()
    with pytest.raises(ModelError, match="disagree"):
        parity_check(path, pre, untrained, trust=model.trust, counts=counts[:50], tolerance=1e-5)


def test_large_inputs_are_scored_in_slices_with_the_same_result(onnx_path, small_adata):
    """predict_proba runs onnxruntime on SESSION_BATCH-cell slices; the answer is the one-call answer."""
    from oncopersistnet.inference.model import INPUT_NAME, OUTPUT_NAME, SESSION_BATCH

    model = OnnxPersisterModel(onnx_path)
    counts = np.tile(dense(small_adata.X).astype(np.float32), (3, 1))[: 2 * SESSION_BATCH + 7]
    whole = model.session.run([OUTPUT_NAME], {INPUT_NAME: counts})[0]
    sliced = model.predict_proba(counts)
    assert sliced.shape == (2 * SESSION_BATCH + 7,)
    np.testing.assert_allclose(sliced, whole, rtol=0, atol=1e-6)


def test_a_model_exported_before_the_ood_output_still_scores(fitted, trained, small_adata, tmp_path):
    """Versions registered before this release have one output and no conformal scores: they keep
    working, labelled at their threshold, with no set, no distance and no flag."""
    import onnx
    import torch

    from oncopersistnet.export import DeployedGraph
    from oncopersistnet.inference.model import INPUT_NAME, OUTPUT_NAME

    pre = fitted[0]
    old = tmp_path / "old.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes, as in export_onnx
        torch.onnx.export(
            DeployedGraph(pre, trained.model).eval(),
            (torch.zeros(2, len(pre.genes_)),),
            str(old),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    proto = onnx.load(str(old))
    onnx.helper.set_model_props(proto, {"genes": json.dumps(list(map(str, pre.genes_))), "threshold": "0.5"})
    onnx.save(proto, str(old))
    model = OnnxPersisterModel(old)
    assert not model.has_distance and model.ood_threshold is None and model.conformal is None
    src = _write_input(tmp_path / "in.h5ad", small_adata[:50])
    summary = predict_file(model, src, tmp_path / "out.csv", progress=False, **CALL_RULE)
    rows = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    probability = rows["persister_probability"].astype(float)
    assert (rows["predicted_label"] == np.where(probability >= 0.5, "persister", "non-persister")).all()
    assert (rows["prediction_set"] == "").all() and (rows["ood_distance"] == "").all()
    assert (rows["out_of_distribution"].astype(str) == "False").all()
    assert summary["coverage"] is None and "no conformal scores" in summary["decision_rule"]
