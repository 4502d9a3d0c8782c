"""Gene-level explanations: integrated gradients through the deployed path, checked against known truth."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SMALL, dense
from helpers import TINY_PARAMS, deep_update, make_project, stage

from oncopersistnet.atomic import rounded
from oncopersistnet.config import params_with, shipped_params
from oncopersistnet.data.simulate import PROGRAMME_GENES, planted_programme, simulate_cells
from oncopersistnet.errors import ModelError
from oncopersistnet.explain import (
    PLANTED_LFC_CUT,
    Signature,
    attention_by_position,
    contrastive_gradients,
    deployed_graph,
    evenly_spaced,
    explain_cells,
    explanation_summary,
    gene_table,
    integrated_gradients,
    load_signatures,
    planted_signs,
    signature_overlap,
    signed_ranking,
    signed_table,
    top_genes,
)
from oncopersistnet.explain.attribution import Attributions
from oncopersistnet.tracking import data_hash

# data_hash of simulate_cells(shipped_params().simulate) (the default params.yaml), as the
# preprocess stage recorded it in data/processed/summary.json before the world
# draws moved into simulate_world(): the refactor must not change one count.
DEFAULT_SIMULATION_HASH = "6cc64737b54c6188"


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " ERROR " in line]


@pytest.fixture(scope="session")
def test_cells(small_adata, small_split):
    """Raw counts (float32) and labels of the fixture's test split."""
    mask = small_split == "test"
    counts = dense(small_adata.X[mask]).astype(np.float32)
    return counts, (small_adata.obs["label"].to_numpy()[mask] == "persister")


@pytest.fixture(scope="session")
def explained(fitted, trained, test_cells):
    """The fixture's test cells explained with the fixture's trained CNN-LSTM."""
    pre, _, _ = fitted
    counts, is_persister = test_cells
    return explain_cells(pre, trained.model, counts, steps=32, top=20, is_persister=is_persister)


def _genes(pre) -> np.ndarray:
    return pre.genes_[pre.selected_]


# ------------------------------------------------------------------ attribution


def test_completeness_attributions_add_up_to_the_logit_change(fitted, trained, test_cells, explained):
    pre, _, _ = fitted
    counts, _ = test_cells
    a = explained.attributions
    change = a.logit - a.baseline_logit
    assert np.median(np.abs(change)) > 0.5  # the cells are not all at the baseline: the check has teeth
    # 32 midpoint steps: each cell's attributions sum to its logit change within a few percent.
    assert np.all(np.abs(a.completeness_gap) <= 0.05 * np.abs(change) + 0.05)
    assert np.median(np.abs(a.completeness_gap)) < 0.02 * np.median(np.abs(change))
    # The gap is integration error: more steps shrink it, 2 steps leave it visibly open.
    graph = deployed_graph(pre, trained.model)
    coarse = integrated_gradients(graph, counts[:40], _genes(pre), steps=2)
    fine = integrated_gradients(graph, counts[:40], _genes(pre), steps=64)
    assert np.abs(fine.completeness_gap).mean() < np.abs(coarse.completeness_gap).mean() / 4
    # The logit is the one behind the deployed probability (sigmoid of it is the graph's output).
    with torch.no_grad():
        deployed = graph(torch.from_numpy(counts)).numpy()
    np.testing.assert_allclose(a.probability, deployed, atol=1e-5)


def test_a_cell_at_the_baseline_gets_no_attribution(fitted, trained):
    pre, _, _ = fitted
    graph = deployed_graph(pre, trained.model)
    # Every gene missing: the graph imputes the training mean, which is the baseline itself.
    missing = np.full((3, pre.genes_.size), np.nan, dtype=np.float32)
    a = integrated_gradients(graph, missing, _genes(pre), steps=8)
    assert np.all(a.values == 0.0)
    np.testing.assert_allclose(a.logit, a.baseline_logit, atol=1e-5)


def test_genes_the_model_does_not_read_get_no_attribution(fitted, trained, test_cells, explained):
    pre, _, _ = fitted
    counts, _ = test_cells
    selected = set(_genes(pre))
    unread = set(pre.genes_) - selected
    assert unread  # the fixture selects 150 of 300 genes
    # Only genes the model reads appear, in the table and in every ranking.
    assert set(explained.table.index) == selected
    for ranking in explained.top.values():
        assert not set(ranking) & unread
    # A gene the input lacks (NaN) is imputed at the baseline: exactly zero attribution in every cell.
    gene = _genes(pre)[0]
    column = int(np.flatnonzero(pre.genes_ == gene)[0])
    lacking = counts[:30].copy()
    lacking[:, column] = np.nan
    a = integrated_gradients(deployed_graph(pre, trained.model), lacking, _genes(pre), steps=8)
    assert np.all(a.values[:, 0] == 0.0)
    assert np.abs(a.values[:, 1:]).sum() > 0


def test_attention_weights_only_for_attention_networks(fitted, trained, test_cells):
    from oncopersistnet.model import CnnLstmAttentionClassifier

    pre, _, _ = fitted
    counts, _ = test_cells
    assert attention_by_position(deployed_graph(pre, trained.model), counts[:5]) is None
    torch.manual_seed(0)
    network = CnnLstmAttentionClassifier(
        pre.n_features_out, conv_channels=[4], lstm_hidden=4, dense_units=4
    ).eval()
    weights = attention_by_position(deployed_graph(pre, network), counts[:5])
    assert weights.shape[0] == 5 and np.allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    summary = explanation_summary(explain_cells(pre, network, counts[:6], steps=4, top=5), 5)
    assert (
        len(summary["attention"]["persister"]) + len(summary["attention"]["non_persister"])
        >= weights.shape[1]
    )


class _LinearGraph(torch.nn.Module):
    """A hand-built stand-in for the deployed graph whose answer is known by construction.

    Expression = log1p(counts) of all three genes; calibrated logit =
    1.5 * (2 * x0 - x1 + 0 * x2) - 0.2. So gene 0 pushes towards persister,
    gene 1 towards non-persister and gene 2 not at all, and integrated gradients
    are exact: 1.5 * w * (x - baseline) for any path.
    """

    WEIGHTS = np.array([2.0, -1.0, 0.0])

    def __init__(self):
        super().__init__()
        self.register_buffer("selected", torch.arange(3))
        self.register_buffer("impute_mean", torch.zeros(3))
        self.network = torch.nn.Linear(3, 1, bias=False)
        with torch.no_grad():
            self.network.weight.copy_(torch.tensor(self.WEIGHTS[None, :], dtype=torch.float32))
        self.network.calibration = torch.tensor([1.5, -0.2])
        self.network.forward = lambda f: torch.nn.functional.linear(f, self.network.weight)[:, 0]

    def expression(self, counts):
        return torch.log1p(counts)

    def features(self, expression):
        return expression


def test_contrastive_attributions_on_a_graph_with_known_answer():
    counts = np.array([[9.0, 0.0, 3.0], [4.0, 1.0, 0.0], [0.0, 5.0, 3.0], [1.0, 2.0, 7.0]], dtype=np.float32)
    is_persister = np.array([True, True, False, False])
    a = contrastive_gradients(
        _LinearGraph(), counts, ["UP", "DOWN", "NONE"], is_persister=is_persister, steps=4
    )
    x = np.log1p(counts.astype(np.float64))
    baseline = np.where(is_persister[:, None], x[~is_persister].mean(axis=0), x[is_persister].mean(axis=0))
    expected = 1.5 * _LinearGraph.WEIGHTS * (x - baseline)  # exact for a linear logit
    np.testing.assert_allclose(a.values, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.baseline_logit, 1.5 * baseline @ _LinearGraph.WEIGHTS - 0.2, rtol=1e-5)
    np.testing.assert_allclose(a.completeness_gap, 0.0, atol=1e-5)
    table = signed_table(a, is_persister)
    # By construction: UP reads towards persister, DOWN towards non-persister, NONE neither.
    assert dict(table["higher_expression_towards"]) == {
        "UP": "persister",
        "DOWN": "non_persister",
        "NONE": "neither",
    }
    np.testing.assert_allclose(
        table.loc[["UP", "DOWN"], "signed_attribution"],
        [np.abs(expected[:, 0]).mean(), -np.abs(expected[:, 1]).mean()],
        rtol=1e-5,
    )
    assert list(table.index) == ["UP", "DOWN", "NONE"] and list(table["signed_rank"]) == [1, 2, 3]
    # The genes' separations add up to the logit gap between the classes, each seen from the other's mean.
    logit = 1.5 * x @ _LinearGraph.WEIGHTS - 0.2
    gap = (logit[:2].mean() - a.baseline_logit[0] + a.baseline_logit[2] - logit[2:].mean()) / 2
    assert table["contrast_separation"].sum() == pytest.approx(gap, rel=1e-5)
    assert signed_ranking(table, 2) == [
        {
            "gene": "UP",
            "higher_expression_towards": "persister",
            "signed_attribution": pytest.approx(table.loc["UP", "signed_attribution"]),
        },
        {
            "gene": "DOWN",
            "higher_expression_towards": "non_persister",
            "signed_attribution": pytest.approx(table.loc["DOWN", "signed_attribution"]),
        },
    ]
    with pytest.raises(ModelError, match="both classes"):
        contrastive_gradients(_LinearGraph(), counts, ["A", "B", "C"], is_persister=np.ones(4, bool))


def test_two_cells_contrast_is_one_segment_walked_both_ways(fitted, trained, test_cells):
    """One cell per class: each is the other's baseline, so the attributions are equal and opposite."""
    pre, _, _ = fitted
    counts, is_persister = test_cells
    pair = np.array([np.flatnonzero(is_persister)[0], np.flatnonzero(~is_persister)[0]])
    a = contrastive_gradients(
        deployed_graph(pre, trained.model), counts[pair], _genes(pre), is_persister=[True, False], steps=16
    )
    assert np.abs(a.values[0]).sum() > 0.1
    # Midpoint steps are symmetric on [0, 1]: the same gradients, the displacement reversed.
    np.testing.assert_allclose(a.values[1], -a.values[0], atol=1e-5)
    np.testing.assert_allclose(a.baseline_logit, a.logit[::-1], atol=1e-5)
    table = signed_table(a, np.array([True, False]))
    np.testing.assert_allclose(table.loc[_genes(pre), "contrast_separation"], a.values[0], atol=1e-5)


def _three_gene_attributions():
    """Two cells (a persister, then a non-persister) over genes D (planted down), U and X."""
    return Attributions(
        values=np.array([[0.5, 0.2, 0.1], [-0.3, -0.4, 0.3]]),
        path_gradient=np.array([[-0.5, 0.1, 0.2], [-0.3, 0.2, -0.1]]),
        genes=np.array(["D", "U", "X"]),
        expression=np.zeros((2, 3)),
        logit=np.zeros(2),
        baseline_logit=np.zeros(2),
    )


def test_signed_table_and_planted_signs_follow_the_definitions():
    # Gene D, planted down: persister cell 1 below the non-persister mean, read as "more -> non-persister".
    a = _three_gene_attributions()
    table = signed_table(a, np.array([True, False]))
    # |A| * sign(gradient), averaged: D (-0.5 - 0.3) / 2, U (0.2 + 0.4) / 2, X (0.1 - 0.3) / 2
    assert table["signed_attribution"].to_dict() == pytest.approx({"D": -0.4, "U": 0.3, "X": -0.1})
    assert list(table.index) == ["D", "U", "X"]
    assert table.loc["D", "contrast_separation"] == pytest.approx(0.4)  # (0.5 - (-0.3)) / 2
    assert table.loc["X", "contrast_attribution_non_persister"] == pytest.approx(0.3)
    planted = pd.Series({"D": -1.0, "U": 1.0, "X": -0.9, "MKI67": -1.2, "UNREAD": 2.0})
    signs = planted_signs(table, planted)
    # Down: D negative (right), X negative (right); up: U positive (right). MKI67 and UNREAD are not read.
    assert signs["down"] == {
        "genes_read": 2,
        "right_sign": 2,
        "fraction_right": 1.0,
        "p_value": pytest.approx(0.25),
        "wrong_sign_genes": [],
    }
    assert signs["up"]["genes_read"] == 1 and signs["up"]["p_value"] == pytest.approx(0.5)
    assert signs["chance"] == 0.5 and signs["proliferation_genes_read"] == {}
    flipped = table.assign(signed_attribution=-table["signed_attribution"])
    wrong = planted_signs(flipped, planted)
    assert wrong["down"]["fraction_right"] == 0.0 and wrong["down"]["wrong_sign_genes"] == ["D", "X"]
    assert wrong["down"]["p_value"] == pytest.approx(1.0)
    named = planted_signs(table.rename(index={"D": "PCNA"}), planted.rename(index={"D": "PCNA"}))
    assert named["proliferation_genes_read"] == {"PCNA": pytest.approx(-0.4)}
    empty = planted_signs(table, pd.Series({"U": 1.0}))
    assert empty["down"]["genes_read"] == 0 and empty["down"]["fraction_right"] is None


def _bars(fig):
    """(gene, width, colour, alpha, label text) of each bar of the attribution figure, top to bottom."""
    from matplotlib.colors import to_hex

    (ax,) = fig.axes
    bars = sorted(ax.containers, key=lambda c: -c.patches[0].get_y())
    labels = {round(t.get_position()[1]): t for t in ax.texts}
    out = []
    for bar in bars:
        patch = bar.patches[0]
        text = labels[round(patch.get_y() + patch.get_height() / 2)]
        out.append(
            (bar.get_label(), patch.get_width(), to_hex(patch.get_facecolor()), patch.get_alpha(), text)
        )
    return out


def test_figure_draws_the_signed_ranking_on_one_axis(tmp_path):
    from oncopersistnet.explain.figure import (
        NO_CONTRAST,
        NON_PERSISTER_COLOUR,
        PERSISTER_COLOUR,
        PLANTED_MARK,
        SIGNATURE_MARK,
        plot_attributions,
        signed_attribution_figure,
    )

    # The table of test_signed_table_and_planted_signs_follow_the_definitions: D -0.4, U +0.3, X -0.1.
    a = _three_gene_attributions()
    table = signed_table(a, np.array([True, False]))
    fig = signed_attribution_figure(table, n_genes=2, planted={"D"}, signature_genes={"U"})
    (down, up) = _bars(fig)
    # The signed ranking's order and values; the planted down gene D on the left, in blue, starred,
    # its name across zero on the empty right side; U on the right, red, lighter (not planted), daggered.
    assert down[:4] == ("D", pytest.approx(-0.4), NON_PERSISTER_COLOUR, 1.0)
    assert down[4].get_text() == f"D {PLANTED_MARK}" and down[4].get_position()[0] > 0
    assert up[:4] == ("U", pytest.approx(0.3), PERSISTER_COLOUR, 0.4)
    assert up[4].get_text() == f"U {SIGNATURE_MARK}" and up[4].get_position()[0] < 0
    (ax,) = fig.axes
    assert ax.get_xlim() == pytest.approx((-0.44, 0.44))  # one shared axis, symmetric about zero
    # Real data (planted None): every bar full colour, no star; all three genes when n_genes allows.
    real = _bars(signed_attribution_figure(table, n_genes=5))
    assert [b[0] for b in real] == ["D", "U", "X"] and {b[3] for b in real} == {1.0}
    assert [b[4].get_text() for b in real] == ["D", "U", "X"]
    # One class only: no signed columns, no bars, and the figure says why.
    lonely = signed_attribution_figure(table.drop(columns=["signed_rank"]), n_genes=5)
    assert not lonely.axes[0].containers and lonely.axes[0].texts[0].get_text() == NO_CONTRAST
    written = plot_attributions(table, tmp_path / "f.png", n_genes=3, planted={"D"})
    assert written.read_bytes()[:4] == b"\x89PNG"


def test_figure_of_a_trained_model_follows_its_signed_ranking(explained):
    from oncopersistnet.explain.figure import signed_attribution_figure

    planted = planted_programme(SMALL)
    down = set(planted.index[planted < -PLANTED_LFC_CUT])
    strong = set(planted.index[planted.abs() > PLANTED_LFC_CUT])
    bars = _bars(signed_attribution_figure(explained.table, n_genes=20, planted=strong))
    ranking = signed_ranking(explained.table, 20)
    assert [(b[0], b[1]) for b in bars] == [
        (r["gene"], pytest.approx(r["signed_attribution"])) for r in ranking
    ]
    # Both directions are drawn, and every planted down gene shown is drawn left of zero.
    assert min(b[1] for b in bars) < 0 < max(b[1] for b in bars)
    shown_down = [b for b in bars if b[0] in down]
    assert all(b[1] < 0 for b in shown_down) and shown_down, [b[:2] for b in bars]
    assert {b[0] for b in bars if b[3] == 1.0} == strong & {b[0] for b in bars}  # planted: full colour


# ------------------------------------------------------------------ aggregation


def test_gene_table_and_rankings_follow_the_definitions():
    values = np.array([[2.0, -1.0, 0.0], [4.0, 1.0, -3.0], [-1.0, -2.0, 0.5]])
    a = Attributions(
        values=values,
        path_gradient=np.ones_like(values),
        genes=np.array(["A", "B", "C"]),
        expression=np.zeros_like(values),
        logit=values.sum(axis=1),
        baseline_logit=0.0,
    )
    is_persister = np.array([True, True, False])
    table = gene_table(a, is_persister)
    assert table.loc["A", "mean_attribution_persister"] == 3.0
    assert table.loc["B", "mean_attribution_non_persister"] == -2.0
    assert table.loc["C", "mean_abs_attribution"] == pytest.approx(3.5 / 3)
    assert list(table.index) == ["A", "B", "C"] and list(table["rank"]) == [1, 2, 3]
    top = top_genes(table, 3)
    assert top["persister"] == ["A"]  # B (0.0) and C (-1.5) do not push persister cells towards persister
    assert top["non_persister"] == ["B", "A"]  # -2.0 before -1.0; C (+0.5) pushes the other way
    assert top["global"] == ["A", "B", "C"] and top_genes(table, 1)["global"] == ["A"]


def test_evenly_spaced_keeps_every_part_of_the_input():
    assert list(evenly_spaced(5, 10)) == [0, 1, 2, 3, 4]
    picked = evenly_spaced(1000, 10)
    assert picked.size == 10 and picked[0] == 0 and picked[-1] == 999


# ------------------------------------------------------------------ known truth


def test_shipped_signatures_are_small_sourced_and_in_the_vocabulary():
    signatures = load_signatures()
    assert {s.name for s in signatures} >= {
        "shaffer2017_pre_resistant_melanoma",
        "hangauer2017_gpx4_dependency",
    }
    for signature in signatures:
        assert 1 <= len(signature.genes) <= 15
        assert "et al." in signature.source and "doi:" in signature.source
        assert set(signature.direction.values()) <= {"up", "down", "required"}
    genes = {g for s in signatures for g in s.genes}
    assert {"AXL", "NGFR", "SERPINE1", "GPX4", "KDM5A"} <= genes


def test_signature_overlap_counts_against_chance():
    table = pd.DataFrame(
        {"mean_path_gradient": [0.5, -0.2] + [0.1] * 8},
        index=pd.Index(["AXL", "SOX10"] + [f"G{i}" for i in range(8)]),
    )
    signature = Signature("s", "Someone et al. 2000 (doi:x)", {"AXL": "up", "SOX10": "up", "NGFR": "up"})
    top = {"global": ["AXL", "SOX10", "G0", "G1", "G2"], "persister": ["AXL"], "non_persister": []}
    result = signature_overlap(signature, table, top, k=5)
    assert result["overlap"] == 2 and result["overlap_genes"] == ["AXL", "SOX10"]
    assert result["genes_not_read"] == ["NGFR"] and result["genes_read_by_model"] == 2
    assert result["chance_rate"] == pytest.approx(0.2) and result["expected_overlap"] == pytest.approx(1.0)
    assert result["p_value"] == pytest.approx(2 / 9)  # both readable genes among 5 of 10: C(8,3)/C(10,5)
    assert result["direction_agrees"] == {"AXL": True, "SOX10": False}
    assert result["in_persister_top"] == ["AXL"]


def test_planted_programme_is_the_simulators_truth(small_adata):
    planted = planted_programme(SMALL)
    assert list(planted.index) == list(small_adata.var_names)
    nonzero = set(planted.index[planted != 0])
    assert set(PROGRAMME_GENES) <= nonzero
    assert (
        len(nonzero - set(PROGRAMME_GENES)) >= 300 // 25 - 3
    )  # the diffuse background shifts, not only the named programme
    # The planted shifts are what the counts show: persister vs non-persister log ratio tracks them.
    counts = small_adata.X.toarray().astype(float)
    normalised = counts / counts.sum(axis=1, keepdims=True)
    is_p = (small_adata.obs["label"] == "persister").to_numpy()
    ratio = np.log((normalised[is_p].mean(0) + 1e-5) / (normalised[~is_p].mean(0) + 1e-5))
    strong = np.abs(planted.to_numpy()) > 1.0
    assert np.corrcoef(ratio[strong], planted.to_numpy()[strong])[0, 1] > 0.8


def test_the_world_refactor_changed_no_simulated_count():
    adata = simulate_cells(shipped_params().simulate)
    digest = data_hash(
        adata.X,
        np.asarray(adata.obs["label"], dtype=str),
        np.asarray(adata.obs["sample"], dtype=str),
        genes=np.asarray(adata.var_names),
        cells=np.asarray(adata.obs_names, dtype=str),
    )
    assert digest == DEFAULT_SIMULATION_HASH
    assert list(planted_programme(shipped_params().simulate).index) == list(adata.var_names)


def test_top_genes_find_the_planted_programme_above_chance(explained):
    planted = planted_programme(SMALL)
    summary = explanation_summary(explained, 20, planted)
    recovery = summary["planted"]
    assert recovery["lfc_cut"] == PLANTED_LFC_CUT and recovery["k"] == 20
    assert 0.05 < recovery["chance_rate"] < 0.3
    assert recovery["precision_at_k"] >= 2 * recovery["chance_rate"]
    assert recovery["auroc"] > 0.65
    # Planted genes in the top are read the planted way round (up-shifted -> towards persister).
    assert recovery["direction_agreement"] >= 0.8
    # A ranking that ignores the attributions (alphabetical) does not pass the same bar.
    alphabetical = {
        key: sorted(explained.table.index)[:20] for key in ("global", "persister", "non_persister")
    }
    from oncopersistnet.explain import planted_recovery

    baseline = planted_recovery(explained.table, planted, alphabetical, k=20)
    assert baseline["precision_at_k"] < recovery["precision_at_k"]
    # The signed ranking reads planted genes the planted way round, down genes included.
    signs = summary["planted_signs"]
    assert signs["down"]["genes_read"] >= 3 and signs["up"]["genes_read"] >= 3
    assert signs["down"]["fraction_right"] >= 0.75 and signs["up"]["fraction_right"] >= 0.75


# ------------------------------------------------------------------ stage


def _stage_inputs(root, small_adata, small_split, pre, network, run_id, drop_last_gene=False):
    """The files the explain stage reads, from the session fixtures."""
    from oncopersistnet.model import save_checkpoint

    (root / "data/validated").mkdir(parents=True, exist_ok=True)
    (root / "data/processed").mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(parents=True, exist_ok=True)
    adata = small_adata[:, :-1].copy() if drop_last_gene else small_adata
    adata.write_h5ad(root / "data/validated/cells.h5ad")
    pd.DataFrame(
        {
            "cell_id": small_adata.obs_names,
            "sample": small_adata.obs["sample"].astype(str),
            "label": small_adata.obs["label"].astype(str),
            "split": small_split,
        }
    ).to_csv(root / "data/processed/split.csv", index=False)
    pre.save(root / "models/preprocessor.npz")
    save_checkpoint(network, root / "models/model.pt")
    (root / "models/mlflow_run.json").write_text(json.dumps({"run_id": run_id}))


OUTPUTS = ("metrics/explain.json", "reports/attributions.csv", "reports/figures/attributions.png")


def test_stage_writes_scores_and_logs_to_the_deployable_run(store, small_adata, small_split, fitted, trained):
    from oncopersistnet.paths import ProjectPaths
    from oncopersistnet.stages import explain as explain_stage
    from oncopersistnet.tracking import configure_mlflow

    pre, _, _ = fitted
    params = params_with(
        shipped_params(), {"simulate": dict(vars(SMALL)), "explain": {"cells": 60, "steps": 8, "top": 10}}
    )
    configure_mlflow(params.mlflow, store)
    with mlflow.start_run() as run:
        pass
    _stage_inputs(store, small_adata, small_split, pre, trained.model, run.info.run_id)
    explain_stage.run(params, ProjectPaths(store))

    summary = json.loads((store / "metrics/explain.json").read_text())
    assert summary["cells"] == 60 and summary["classes_from"] == "labels"
    assert summary["planted"]["k"] == 10 and 0 <= summary["planted"]["precision_at_k"] <= 1
    assert set(summary["top_genes"]) == {"persister", "non_persister", "global"}
    # The signed ranking is the table's signed order, and every planted read gene is in the sign check.
    signed = pd.read_csv(store / "reports/attributions.csv", index_col="gene").sort_values("signed_rank")
    assert [r["gene"] for r in summary["signed_ranking"]] == list(signed.index[:10])
    lfc = planted_programme(SMALL).reindex(signed.index)
    signs = summary["planted_signs"]
    assert signs["down"]["genes_read"] == int((lfc < -PLANTED_LFC_CUT).sum())
    assert signs["up"]["genes_read"] == int((lfc > PLANTED_LFC_CUT).sum())
    down = signed.loc[lfc < -PLANTED_LFC_CUT, "signed_attribution"]
    assert signs["down"]["right_sign"] == int((down < 0).sum())
    c = summary["contrastive"]
    assert c["separation_sum"] == pytest.approx(c["logit_separation"], abs=0.05 * abs(c["logit_separation"]))
    assert set(summary["signatures"]) == {s.name for s in load_signatures()}
    table = pd.read_csv(store / "reports/attributions.csv", index_col="gene")
    assert set(table.index) == set(_genes(pre)) and {"planted_lfc", "signatures", "rank"} <= set(
        table.columns
    )
    assert (store / "reports/figures/attributions.png").read_bytes()[:4] == b"\x89PNG"
    logged = mlflow.get_run(run.info.run_id)
    # MLflow keeps the figures unrounded; metrics/explain.json holds them at FIGURE_DIGITS
    assert rounded(logged.data.metrics["explain_precision_at_10"]) == summary["planted"]["precision_at_k"]
    assert rounded(logged.data.metrics["explain_chance_rate"]) == summary["planted"]["chance_rate"]
    assert logged.data.params["explain.steps"] == "8"
    if signs["down"]["genes_read"]:
        assert (
            rounded(logged.data.metrics["explain_planted_down_right_sign"]) == signs["down"]["fraction_right"]
        )
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "explain")}
    assert {"explain/attributions.csv", "explain/attributions.json"} <= artifacts


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("genes", "genes are not the 300 genes models/preprocessor.npz was fitted on"),
        ("steps", "explain.steps: must be positive"),
    ],
)
def test_stage_on_bad_input_fails_in_one_line_and_writes_nothing(
    tmp_path, small_adata, small_split, fitted, trained, case, message
):
    pre, _, _ = fitted
    params = deep_update(TINY_PARAMS, {"explain": {"steps": 0}} if case == "steps" else {})
    project = make_project(tmp_path, params, git=False)
    _stage_inputs(
        project, small_adata, small_split, pre, trained.model, "0" * 32, drop_last_gene=case == "genes"
    )
    result = stage("explain", project, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    (line,) = _error_lines(result.stderr)
    assert "explain failed:" in line and message in line
    for output in OUTPUTS:
        assert not (project / output).exists(), output


# ------------------------------------------------------------------ CLI


def test_cli_help_documents_explain(capsys):
    from oncopersistnet.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["explain", "--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for option in ("--input", "--top", "--model", "--output", "--label-key"):
        assert option in out
    assert "models:/oncopersistnet@champion" in out


@pytest.fixture()
def model_folder(tmp_path, fitted, trained):
    from oncopersistnet.model import save_checkpoint

    pre, _, _ = fitted
    folder = tmp_path / "model"
    folder.mkdir()
    pre.save(folder / "preprocessor.npz")
    save_checkpoint(trained.model, folder / "model.pt")
    return folder


def test_cli_explains_a_small_h5ad_with_a_local_model(
    tmp_path, monkeypatch, capsys, small_adata, small_split, fitted, model_folder
):
    from oncopersistnet.cli import main

    pre, _, _ = fitted
    monkeypatch.chdir(tmp_path)  # no params.yaml here: built-in defaults
    cells = small_adata[small_split == "test"][::3].copy()
    cells.write_h5ad(tmp_path / "cells.h5ad")
    args = ["explain", "--input", "cells.h5ad", "--model", str(model_folder), "--top", "5", "--steps", "8"]
    assert main([*args, "--output", "out/attributions.csv", "--label-key", "label"]) == 0
    out = capsys.readouterr().out
    assert f"{cells.n_obs} cells" in out and "by labels" in out
    table = pd.read_csv(tmp_path / "out/attributions.csv", index_col="gene")
    assert set(table.index) == set(_genes(pre)) and "planted_lfc" not in table.columns
    # The printout is the signed ranking of the written table: rank, gene, direction, signed value.
    assert _printed_ranking(out) == _csv_ranking(table, 5)
    assert {row[2] for row in _printed_ranking(out)} <= {"persister", "non_persister"}
    # Without labels: grouped by the model's own calls, the same kind of ranking.
    assert main([*args, "--output", "out/called.csv"]) == 0
    out = capsys.readouterr().out
    assert "by the model's calls" in out
    called = pd.read_csv(tmp_path / "out/called.csv", index_col="gene")
    assert _printed_ranking(out) == _csv_ranking(called, 5)
    # One class only: nothing to contrast; the command says so and lists genes by mean |attribution|.
    persisters = cells[cells.obs["label"] == "persister"].copy()
    persisters.write_h5ad(tmp_path / "persisters.h5ad")
    one = ["explain", "--input", "persisters.h5ad", "--model", str(model_folder), "--top", "3"]
    assert main([*one, "--steps", "8", "--label-key", "label", "--output", "out/one.csv"]) == 0
    out = capsys.readouterr().out
    lonely = pd.read_csv(tmp_path / "out/one.csv", index_col="gene")
    assert "signed_rank" not in lonely.columns and "no signed ranking" in out
    assert [line.split()[1] for line in out.splitlines() if line[:4].strip() in {"1", "2", "3"}] == list(
        lonely.index[:3]
    )


def _printed_ranking(out: str) -> list[tuple]:
    """(rank, gene, direction, signed attribution) of the rows under the command's signed header."""
    from oncopersistnet.explain.command import SIGNED_HEADER

    lines = out.splitlines()
    start = lines.index(SIGNED_HEADER) + 1
    rows = []
    for line in lines[start:]:
        if not line.strip():
            break
        rank, gene, direction, value = line.split()
        rows.append((int(rank), gene, direction, pytest.approx(float(value), abs=1e-4)))
    return rows


def _csv_ranking(table: pd.DataFrame, top: int) -> list[tuple]:
    head = table.sort_values("signed_rank").head(top)
    return [
        (int(row["signed_rank"]), gene, row["higher_expression_towards"], row["signed_attribution"])
        for gene, row in head.iterrows()
    ]


def test_cli_bad_input_is_one_error_line_and_no_output(
    tmp_path, monkeypatch, capsys, small_adata, model_folder
):
    from oncopersistnet.cli import main

    monkeypatch.chdir(tmp_path)
    small_adata[:20].copy().write_h5ad(tmp_path / "cells.h5ad")
    code = main(
        [
            "explain",
            "--input",
            "cells.h5ad",
            "--model",
            str(model_folder),
            "--label-key",
            "condition_x",
            "--output",
            "a.csv",
        ]
    )
    assert code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "obs has no column 'condition_x'" in errors[0]
    assert not (tmp_path / "a.csv").exists()
    assert main(["explain", "--input", "absent.h5ad", "--model", str(model_folder)]) == 1
    assert main(["explain", "--input", "cells.h5ad", "--model", str(tmp_path / "nowhere")]) == 1
    assert main(["explain", "--input", "cells.h5ad", "--model", str(model_folder), "--top", "0"]) == 1
