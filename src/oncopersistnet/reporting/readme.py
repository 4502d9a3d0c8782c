"""Rewrite the README's generated sections from the committed metrics files (``make results``).

Each section sits between ``<!-- NAME:start (written by `make results` from
metrics/FILE.json; do not edit) -->`` and ``<!-- NAME:end -->`` and is rendered
from the files :data:`BLOCKS` names for it (a metrics file a stage wrote, params.yaml,
the worked example's committed figures, the benchmarks' JSON), so the README never
carries a typed-in number; tests/test_readme_blocks.py fails when a section is stale.
All sections are rendered first and the README is written once, atomically, so
a failing section leaves the file as it was.

Run: ``python -m oncopersistnet.reporting.readme README.md metrics``.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from oncopersistnet.atomic import write_text
from oncopersistnet.errors import InputDataError
from oncopersistnet.logging_setup import configure_logging
from oncopersistnet.reporting.blocks import (
    coverage_block,
    cross_study_block,
    explain_block,
    results_block,
    transfer_block,
    trust_block,
)
from oncopersistnet.reporting.facts import (
    benchmarks_block,
    data_block,
    gbm_example_block,
    signal_floors_block,
)

logger = logging.getLogger("oncopersistnet")


@dataclass(frozen=True)
class Block:
    """One generated section: its renderer and the files it reads (the renderer's arguments, in order).

    A source without a ``/`` is a file of the metrics folder; one with a ``/`` (or ``params.yaml``) is a
    path from the project root, the metrics folder's parent, so a section can be rendered from the
    worked example's or the benchmarks' committed figures. ``.yaml`` sources are parsed as YAML. A
    source listed in ``optional`` may be absent: the renderer then gets None and says what to run.
    """

    sources: tuple[str, ...]
    render: Callable[..., str]
    optional: tuple[str, ...] = ()


#: Sources read from the project root although they hold no ``/``.
ROOT_FILES = ("params.yaml",)

#: Section name -> where it comes from, in the README's order.
BLOCKS: dict[str, Block] = {
    "signal_floors": Block(("training_signal.json", "params.yaml"), signal_floors_block),
    "gbm_example": Block(("examples/gbm_comparison.json",), gbm_example_block),
    "data": Block(("data.json",), data_block),
    "results": Block(("comparison.json", "evaluate.json"), results_block),
    "coverage": Block(("comparison.json", "evaluate.json"), coverage_block),
    "trust": Block(("trust.json",), trust_block),
    "explain": Block(("explain.json",), explain_block),
    "transfer": Block(("transfer.json",), transfer_block),
    "cross_study": Block(("cross_study.json",), cross_study_block),
    "benchmarks": Block(
        ("benchmarks/results.json",), benchmarks_block, optional=("benchmarks/results.json",)
    ),
}


def _source_path(source: str, metrics_dir: Path) -> Path:
    """Where ``source`` lives: the metrics folder, or the project root (the metrics folder's parent)."""
    return metrics_dir.parent / source if "/" in source or source in ROOT_FILES else metrics_dir / source


def _source_name(source: str) -> str:
    """``source`` as the start marker names it, from the project root."""
    return source if "/" in source or source in ROOT_FILES else f"metrics/{source}"


def start_marker(name: str) -> str:
    """The line that opens section ``name``; it says which files the section is rendered from."""
    sources = " and ".join(_source_name(source) for source in BLOCKS[name].sources)
    return f"<!-- {name}:start (written by `make results` from {sources}; do not edit) -->"


def end_marker(name: str) -> str:
    return f"<!-- {name}:end -->"


def _read_metrics(path: Path, *, optional: bool = False) -> Any:
    if optional and not path.exists():
        return None
    try:
        text = path.read_text()
        return yaml.safe_load(text) if path.suffix == ".yaml" else json.loads(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise InputDataError(
            f"{path}: cannot be read ({exc.__class__.__name__}); run the pipeline (make run) first"
        ) from exc


def render(name: str, metrics_dir: Path) -> str:
    """The body of section ``name`` from its files (under ``metrics_dir`` or the project root above it)."""
    block = BLOCKS[name]
    summaries = [
        _read_metrics(_source_path(source, metrics_dir), optional=source in block.optional)
        for source in block.sources
    ]
    try:
        return block.render(*summaries).strip()
    except KeyError as exc:
        raise InputDataError(
            f"{metrics_dir}: {name} section: metrics file lacks {exc}; rerun the pipeline (make run)"
        ) from exc


def replace_block(text: str, name: str, body: str, *, where: str = "README") -> str:
    """``text`` with section ``name`` replaced by ``body`` (its start marker rewritten too)."""
    pattern = re.compile(re.escape(f"<!-- {name}:start") + r".*?" + re.escape(end_marker(name)), re.DOTALL)
    if not pattern.search(text):
        raise InputDataError(f"{where}: no {name} block ({start_marker(name)} ... {end_marker(name)})")
    return pattern.sub(lambda _: f"{start_marker(name)}\n{body}\n{end_marker(name)}", text)


def block_body(text: str, name: str) -> str:
    """What section ``name`` holds now (for the staleness test)."""
    return text.split(start_marker(name), 1)[1].split(end_marker(name), 1)[0].strip()


def update_readme(readme: Path, metrics_dir: Path) -> bool:
    """Rewrite every section; return whether the file changed."""
    text = readme.read_text(encoding="utf-8")
    new = text
    for name in BLOCKS:
        new = replace_block(new, name, render(name, metrics_dir), where=str(readme))
    if new != text:
        write_text(readme, new)
    return new != text


def main(argv: list[str] | None = None) -> int:
    """``python -m oncopersistnet.reporting.readme README.md metrics``."""
    parser = argparse.ArgumentParser(
        description="Rewrite the README's generated sections ("
        + ", ".join(BLOCKS)
        + ") from the metrics folder."
    )
    parser.add_argument("readme", type=Path)
    parser.add_argument("metrics", type=Path)
    args = parser.parse_args(argv)
    configure_logging()
    try:
        changed = update_readme(args.readme, args.metrics)
    except InputDataError as exc:
        logger.error("results: %s", exc)
        return 1
    logger.info(
        "%s: %s sections %s", args.readme, ", ".join(BLOCKS), "updated" if changed else "already up to date"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
