"""The README's transfer, attribution and cross-study figures are the pipeline's, not typed in."""

from __future__ import annotations

from pathlib import Path

import pytest

from oncopersistnet.errors import InputDataError
from oncopersistnet.readme_blocks import (
    RENDERERS,
    block_body,
    end_marker,
    render,
    replace_block,
    start_marker,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(RENDERERS))
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
