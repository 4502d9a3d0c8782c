"""The README's generated sections (results, attributions, transfer, cross-study) come from metrics/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from oncopersistnet.choices import ALL_MODEL_FAMILIES
from oncopersistnet.errors import InputDataError
from oncopersistnet.reporting.blocks import results_block, trust_block
from oncopersistnet.reporting.readme import (
    BLOCKS,
    block_body,
    end_marker,
    render,
    replace_block,
    start_marker,
    update_readme,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_readme_block_matches_the_committed_metrics(name):
    readme = (ROOT / "README.md").read_text()
    assert block_body(readme, name) == render(name, ROOT / "metrics"), (
        f"README {name} block is stale: run `make results`"
    )


def test_replace_block_rewrites_only_its_block():
    text = f"intro\n{start_marker('transfer')}\nold\n{end_marker('transfer')}\noutro\n"
    new = replace_block(text, "transfer", "new body")
    assert new == f"intro\n{start_marker('transfer')}\nnew body\n{end_marker('transfer')}\noutro\n"
    with pytest.raises(InputDataError, match="no explain block"):
        replace_block(text, "explain", "x")


def test_a_missing_metrics_file_is_named(tmp_path):
    with pytest.raises(InputDataError, match="transfer.json: cannot be read"):
        render("transfer", tmp_path)


def test_readme_results_come_from_the_pipeline_output():
    comparison = json.loads((ROOT / "metrics/comparison.json").read_text())
    readme = (ROOT / "README.md").read_text()
    block = block_body(readme, "results")
    evaluate = json.loads((ROOT / "metrics/evaluate.json").read_text())
    assert block == results_block(comparison, evaluate), (
        "README results are stale: run `make results` after `make run`"
    )
    assert set(comparison["models"]) == set(ALL_MODEL_FAMILIES)


def test_update_readme_rewrites_only_the_block(tmp_path):
    metrics = tmp_path / "metrics"
    shutil.copytree(ROOT / "metrics", metrics)
    stale = "\n\n".join(f"{start_marker(name)}\nold numbers\n{end_marker(name)}" for name in BLOCKS)
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{stale}\n\nafter\n")
    assert update_readme(readme, metrics)
    text = readme.read_text()
    assert "old numbers" not in text and text.startswith("# title") and text.endswith("after\n")
    assert "| cnn_lstm |" in text
    assert not update_readme(readme, metrics)  # idempotent


def test_trust_block_shows_each_dataset_rate_from_the_file():
    figures = {
        "name": "other world",
        "description": "another world_seed",
        "cells": 3000,
        "gene_fraction": 0.1355,
        "no_call_fraction": 0.0,
        "ood_fraction_of_called": 0.9683,
        "median_ood_distance": 1.7515,
        "persister_fraction_of_called": 0.1122,
        "uncertain_fraction_of_called": 0.291,
    }
    block = trust_block({"ood_threshold": 1.2345, "nominal_rate": 0.01, "datasets": {"other_world": figures}})
    assert block.startswith(
        "Threshold 1.234: the 99% quantile of the validation cells' distance, so about 1%"
    )
    assert (
        "| other world: another world_seed (3,000 cells) | 14% | 0.0% | **96.8%** | 1.75 | 11.2% | 29.1% |"
        in block
    )
