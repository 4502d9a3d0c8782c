"""Leave-one-dataset-out report.

No leakage of the held-out study, learning-curve rows, the overlap sweep, the stage.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from helpers import TINY_PARAMS, deep_update, make_project, stage

from oncopersistnet.config import Params, params_with, shipped_params
from oncopersistnet.data.simulate import simulate_cells
from oncopersistnet.errors import ConfigError
from oncopersistnet.preprocessing import CellPreprocessor
from oncopersistnet.transfer import cross_study as cs
from oncopersistnet.transfer.cross_study_report import cross_study_markdown, plot_cross_study, summarize
from oncopersistnet.transfer.studies import from_anndata

NAMES = ("alpha", "beta", "gamma")
KS = [1, 2]
FRACTIONS = [1.0, 0.5, 0.2]
SHIPPED = shipped_params()


def _params(**changes) -> Params:
    params = params_with(
        SHIPPED,
        {
            "cross_study": {
                "datasets": [{"name": n, "source": "simulate"} for n in NAMES],
                "max_cells_per_sample": None,
                "k_samples": KS,
                "max_epochs": 4,
                "patience": 2,
                "sweep_dataset": "beta",
                "overlap_fractions": FRACTIONS,
            },
            "train": {
                "conv_channels": [4, 8],
                "lstm_hidden": 8,
                "dense_units": 8,
                "batch_size": 64,
                "learning_rate": 0.005,
            },
            "preprocess": {"n_top_genes": 60, "n_components": 10},
        },
    )
    return replace(params, cross_study=replace(params.cross_study, **changes))


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """As the stage does: small networks, and 2 threads on a shared 2-core machine are ~8x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def studies():
    """Three studies from three simulated worlds: each has genes the others lack."""
    out = []
    for i, name in enumerate(NAMES):
        adata = simulate_cells(
            replace(
                SHIPPED.simulate,
                n_cells=300,
                n_genes=150,
                n_samples=6,
                effect_size=3.0,
                label_noise=0.0,
                world_seed=i,
                seed=i,
            )
        )
        out.append(from_anndata(name, adata, f"world {i}"))
    return out


@pytest.fixture(scope="module")
def results(studies):
    return cs.run_cross_study(studies, _params())


def _row_sums(study, ids):
    position = {f"{study.name}:{c}": i for i, c in enumerate(study.cells.cell_ids)}
    rows = [position[i] for i in ids if i in position]
    return np.asarray(study.cells.X[rows].sum(axis=1)).ravel()


def test_the_held_out_study_never_reaches_its_source_model(studies, monkeypatch):
    fits, candidate_folds, adapted = [], [], []
    original_fit = CellPreprocessor.fit

    def spy_fit(self, counts, genes):
        fits.append(
            (
                np.asarray(counts.toarray() if hasattr(counts, "toarray") else counts, dtype=np.float64),
                np.asarray(genes, dtype=str),
            )
        )
        return original_fit(self, counts, genes)

    original_candidate = cs.make_candidate

    def spy_candidate(family, params, seed):
        candidate = original_candidate(family, params, seed)
        fit = candidate.fit

        def recorded(fold):
            candidate_folds.append(
                (fold.name, set(fold.features["train"].cell_ids), set(fold.features["val"].cell_ids))
            )
            return fit(fold)

        candidate.fit = recorded
        return candidate

    original_adapt = cs.adapt

    def spy_adapt(parent, cells, split, *args, **kwargs):
        adapted.append(
            (
                set(cells.cells.cell_ids[split == "train"]) | set(cells.cells.cell_ids[split == "val"]),
                set(cells.cells.samples[split == "test"]),
            )
        )
        return original_adapt(parent, cells, split, *args, **kwargs)

    monkeypatch.setattr(CellPreprocessor, "fit", spy_fit)
    monkeypatch.setattr(cs, "make_candidate", spy_candidate)
    monkeypatch.setattr(cs, "adapt", spy_adapt)

    for index, target in enumerate(studies):
        fits.clear(), candidate_folds.clear(), adapted.clear()
        result = cs.hold_out(studies, index, _params())
        sources = [s for s in studies if s is not target]
        held_ids = {f"{target.name}:{c}" for c in target.cells.cell_ids}
        trained_on = set(result.source_train_cells) | set(result.source_val_cells)
        assert not trained_on & held_ids
        assert {i.split(":")[0] for i in trained_on} == {s.name for s in sources}

        # The source preprocessor: the other studies' genes only, exactly the source training cells.
        counts, genes = fits[0]
        assert set(genes) == {g for s in sources for g in s.cells.genes}
        assert set(target.cells.genes) - set(genes), (
            "the held-out study's own genes must not be in the source gene space"
        )
        assert counts.shape[0] == len(result.source_train_cells)
        expected = np.concatenate([_row_sums(s, result.source_train_cells) for s in sources])
        assert np.array_equal(np.sort(np.nansum(counts, axis=1)), np.sort(expected))

        # Source network and baseline: trained and early-stopped on source cells only.
        source_fits = [f for f in candidate_folds if f[0] == f"without-{target.name}"]
        assert len(source_fits) == 2  # baseline + one network seed
        for _, train, val in source_fits:
            assert train == set(result.source_train_cells) and val == set(result.source_val_cells)
            assert not (train | val) & held_ids
        # Fine-tuning and target-only fits never see the held-out study's test samples.
        test_cells = set(target.cells.cell_ids[np.isin(target.cells.samples, result.partition.test_samples)])
        for seen, test_samples in adapted:
            assert not seen & test_cells and set(test_samples) == set(result.partition.test_samples)
        for name, train, val in candidate_folds:
            assert not (train | val) & test_cells and not (train | val) & {
                f"{target.name}:{c}" for c in test_cells
            }, name


def test_learning_curve_has_one_row_per_k_setting_and_model(results, studies):
    for result, study in zip(results, studies, strict=True):
        rows = result.rows
        zero = [r for r in rows if r["setting"] == "zero_shot"]
        assert sorted(r["model"] for r in zero) == ["baseline", "network"] and all(r["k"] == 0 for r in zero)
        for setting in ("fine_tuned", "target_only"):
            for model in ("network", "baseline"):
                assert sorted(r["k"] for r in rows if r["setting"] == setting and r["model"] == model) == KS
        # Simulated samples hold one class: k labelled samples per class, nested,
        # disjoint from the fixed test set.
        partition = result.partition
        assert partition.per_class
        for k in KS:
            assert len(partition.pool[k]) == 2 * k
            assert {r["labelled_samples"] for r in rows if r["k"] == k} == {2 * k}
            assert not set(partition.pool[k]) & set(partition.test_samples)
            assert set(partition.pool[KS[0]]) <= set(partition.pool[k])
        assert result.n_test_cells == int(np.isin(study.cells.samples, partition.test_samples).sum())
        assert all(0.0 <= r["roc_auc"] <= 1.0 for r in rows)
    summary = summarize(results, studies, _params())
    for name in NAMES:
        entry = summary["held_out"][name]
        assert set(entry["fine_tuned"]) == set(entry["target_only"]) == {"k1", "k2"}
        assert entry["gene_overlap"]["selected_present"] <= entry["gene_overlap"]["selected_genes"]
    report = cross_study_markdown(summary)
    assert report.count("| 1 per class |") == len(NAMES) and report.count("| 2 per class |") == len(NAMES)
    assert "## Overlap sweep" in report


def test_samples_holding_both_classes_are_counted_as_samples(studies):
    mixed = studies[0]
    mixed = replace(
        mixed, cells=replace(mixed.cells, samples=np.array([f"P{i % 5}" for i in range(mixed.n_cells)]))
    )  # 5 patients, both classes each
    partition = cs.partition_target(mixed, KS, 0.25, seed=0)
    assert not partition.per_class
    assert [len(partition.pool[k]) for k in KS] == KS and len(partition.test_samples) == 5 - max(KS)


def test_a_study_with_too_few_samples_is_refused_readably(studies):
    with pytest.raises(Exception, match="k up to 3 per class plus 1 test sample per class needs 4"):
        cs.partition_target(studies[0], [1, 3], 0.25, seed=0)


def test_thin_genes_keeps_the_fraction_it_says():
    rng = np.random.default_rng(0)
    counts = rng.poisson(2.0, (20, 50)).astype(np.float32)
    present = np.ones(50, dtype=bool)
    present[:13] = False
    counts[:, ~present] = np.nan
    previous = present
    for fraction in (1.0, 0.75, 0.5, 0.25, 0.1):
        thinned, kept = cs.thin_genes(counts, present, fraction, seed=3)
        assert kept.sum() == round(fraction * present.sum())
        observed = ~np.isnan(thinned).all(axis=0)
        assert np.array_equal(observed, kept) and not (kept & ~present).any()
        assert np.array_equal(thinned[:, kept], counts[:, kept])
        assert not (kept & ~previous).any()  # nested: a lower level keeps a subset
        previous = kept


def test_the_sweep_reports_the_genes_it_kept(results):
    swept = next(r for r in results if r.held_out == "beta")
    assert all(not r.sweep for r in results if r.held_out != "beta")
    shared = swept.overlap["model_genes_present"]
    held = [r for r in swept.sweep if r["scope"] == "held_out" and r["model"] == "network"]
    assert [r["fraction_kept"] for r in held] == FRACTIONS
    for row in held:
        assert row["genes_present"] == round(row["fraction_kept"] * shared)
        assert row["selected_present"] <= row["genes_present"]
    assert held[0]["selected_present"] == swept.overlap["selected_present"]  # 100 % = the natural overlap
    assert held[0]["roc_auc"] == pytest.approx(
        next(r["roc_auc"] for r in swept.rows if r["setting"] == "zero_shot" and r["model"] == "network")
    )


def test_report_and_figure_read_the_same_from_the_metrics_file(results, studies, tmp_path):
    """The file sorts keys (sweep levels "keep_100pct" < "keep_10pct").

    The report must not follow that order.
    """
    from oncopersistnet.atomic import write_json

    summary = summarize(results, studies, _params())
    write_json(tmp_path / "cross_study.json", summary)
    reread = json.loads((tmp_path / "cross_study.json").read_text())
    assert cross_study_markdown(reread) == cross_study_markdown(summary)
    report = cross_study_markdown(reread)
    assert (
        report.index("| alpha | 0 (zero-shot)")
        < report.index("| beta | 0 (zero-shot)")
        < report.index("| gamma | 0 (zero-shot)")
    )
    sweep_rows = [
        line
        for line in report.splitlines()
        if line.startswith("| 100% |") or line.startswith("| 50% |") or line.startswith("| 20% |")
    ]
    assert [row.split(" |")[0] for row in sweep_rows] == ["| 100%", "| 50%", "| 20%"]
    path = plot_cross_study(reread, tmp_path / "cross_study.png")
    assert path.stat().st_size > 20_000


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"datasets": [{"name": "a"}]}, "at least 2 datasets"),
        (
            {"datasets": [{"name": "a"}, {"name": "a", "source": "simulate"}], "sweep_dataset": "a"},
            "names must be unique",
        ),
        ({"k_samples": [0, 1]}, "k_samples"),
        ({"sweep_dataset": "nope"}, "sweep_dataset: 'nope' is not one of"),
        ({"overlap_fractions": [1.0, 0.0]}, "overlap_fractions"),
        (
            {
                "datasets": [
                    {"name": "a", "source": "pipeline", "world_seed": 2},
                    {"name": "study_B", "source": "simulate"},
                ]
            },
            "only apply to source: simulate",
        ),
        (
            {
                "datasets": [
                    {"name": "a", "source": "simulate", "n_genes": 0},
                    {"name": "study_B", "source": "simulate"},
                ]
            },
            r"datasets\[0\].n_genes: must be positive",
        ),
        ({"baseline": "celltypist"}, "cross_study.baseline"),
    ],
)
def test_bad_cross_study_params_name_the_key(changes, message):
    with pytest.raises(ConfigError, match=message):
        params_with(SHIPPED, {"cross_study": changes})


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "data/external/missing.h5ad",
            "cross_study failed: cross_study.datasets[1] (b).source: "
            "data/external/missing.h5ad: no such file",
        ),
        (
            "/tmp/elsewhere.h5ad",
            "cross_study.datasets[1] (b).source: /tmp/elsewhere.h5ad is outside data/external/",
        ),
    ],
)
def test_stage_fails_in_one_readable_line_on_a_bad_dataset_path(tmp_path, source, message):
    datasets = [{"name": "a", "source": "simulate", "world_seed": 3}, {"name": "b", "source": source}]
    project = make_project(
        tmp_path,
        deep_update(TINY_PARAMS, {"cross_study": {"datasets": datasets, "sweep_dataset": "a"}}),
        git=False,
    )
    result = stage("cross_study", project, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and message in errors[0], errors
    assert (
        not (project / "metrics/cross_study.json").exists()
        and not (project / "reports/cross_study.md").exists()
    )
