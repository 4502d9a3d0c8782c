"""The README's figures that come from pipeline outputs, rewritten by `make results`.

Each block sits between ``<!-- NAME:start ... -->`` and ``<!-- NAME:end -->`` and
is rendered from one git-tracked metrics file, so the README never carries a
typed-in number; a test fails when a block is stale. The model comparison has
its own block (:mod:`oncopersistnet.evaluation.report`); this module adds the
later stages: transfer, gene attributions and the cross-study report.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from oncopersistnet.errors import InputDataError

logger = logging.getLogger(__name__)


def start_marker(name: str) -> str:
    return f"<!-- {name}:start (written by `make results` from metrics/{name}.json; do not edit) -->"


def end_marker(name: str) -> str:
    return f"<!-- {name}:end -->"


def transfer_block(summary: Mapping[str, Any]) -> str:
    """Where the model went, how much of its gene panel it found there, and the table."""
    from oncopersistnet.transfer.report import transfer_table

    if "skipped" in summary:
        return f"Transfer skipped: {summary['skipped']}."
    study, match = summary["study"], summary["study"]["gene_match"]
    mode = "head retrained on frozen conv/LSTM layers" if summary["mode"] == "head" else "all weights trained"
    return "\n\n".join(
        [
            f"The pipeline's registered model on `{study['input']}` ({study['cells']:,} cells); tested on samples "
            f"{', '.join(study['samples']['test'])} ({study['test_cells']:,} cells), fine-tuned on "
            f"{', '.join(study['samples']['train'])} ({mode}, scaling {'refitted' if summary['refit_scaling'] else 'kept'}). "
            f"The new panel holds {match['model_genes_found']:,} of the model's {match['model_genes']:,} genes and "
            f"{match['selected_genes_found']:,} of the {match['selected_genes']:,} it reads.",
            transfer_table(summary),
        ]
    )


def explain_block(summary: Mapping[str, Any]) -> str:
    """Recovery of the planted programme, top genes per class, overlap with published signatures."""
    lines = [
        f"Integrated gradients of the calibrated logit on {summary['cells']:,} held-out cells "
        f"({summary['persister_cells']:,} persisters; classes from {summary['classes_from']}), over the "
        f"{summary['genes_read']:,} genes the model reads; each cell's attributions add up to its logit change "
        f"(median gap {summary['completeness']['median_abs_gap']:.3f} on a median change of "
        f"{summary['completeness']['median_abs_logit_change']:.2f})."
    ]
    planted = summary.get("planted")
    if planted:
        lines.append(
            f"Against the simulator's planted genes (|log fold change| > {planted['lfc_cut']}): precision@{planted['k']} "
            f"**{planted['precision_at_k']:.2f}** (chance {planted['chance_rate']:.3f}), recall@{planted['k']} "
            f"{planted['recall_at_k']:.2f}, AUROC planted vs not {planted['auroc']:.3f}; "
            f"{planted['planted_genes_read']} of {planted['planted_genes']} planted genes survive gene selection "
            f"(the model cannot attribute to the rest). Planted genes in the top {planted['k']}: {', '.join(planted['hits'])}."
        )
    top = summary["top_genes"]
    lines.append(
        f"Top 10, persister cells: {', '.join(top['persister'][:10])}. "
        f"Non-persister cells: {', '.join(top['non_persister'][:10])}."
    )
    rows = [
        "| published signature | genes | read by the model | in the top "
        + str(summary["top"])
        + " | expected by chance |",
        "|---|---|---|---|---|",
    ]
    for name, s in summary["signatures"].items():
        rows.append(
            f"| {name} ({s['source'].split(' (')[0]}) | {s['signature_genes']} | {s['genes_read_by_model']} | "
            f"{s['overlap']}{' (' + ', '.join(s['overlap_genes']) + ')' if s['overlap_genes'] else ''} | {s['expected_overlap']:.2f} |"
        )
    lines.append("\n".join(rows))
    return "\n\n".join(lines)


def cross_study_block(summary: Mapping[str, Any]) -> str:
    """The cross-study report (``reports/cross_study.md``) without its title, its sections one level down."""
    from oncopersistnet.transfer.cross_study_report import cross_study_markdown

    body = cross_study_markdown(dict(summary)).split("\n", 1)[1]  # drop the "# ..." title
    return re.sub(r"^## ", "#### ", body, flags=re.MULTILINE)


RENDERERS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "transfer": transfer_block,
    "explain": explain_block,
    "cross_study": cross_study_block,
}


def render(name: str, metrics_dir: Path) -> str:
    """The body of block ``name`` from ``metrics_dir/NAME.json``."""
    path = metrics_dir / f"{name}.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputDataError(
            f"{path}: cannot be read ({exc.__class__.__name__}); run the pipeline (make run) first"
        ) from exc
    return RENDERERS[name](summary).strip()


def replace_block(text: str, name: str, body: str, where: str = "README") -> str:
    """``text`` with block ``name`` replaced by ``body``."""
    pattern = re.compile(re.escape(f"<!-- {name}:start") + r".*?" + re.escape(end_marker(name)), re.DOTALL)
    if not pattern.search(text):
        raise InputDataError(f"{where}: no {name} block ({start_marker(name)} ... {end_marker(name)})")
    return pattern.sub(lambda _: f"{start_marker(name)}\n{body}\n{end_marker(name)}", text)


def block_body(text: str, name: str) -> str:
    """What block ``name`` holds now (for the staleness test)."""
    return text.split(start_marker(name), 1)[1].split(end_marker(name), 1)[0].strip()


def update_readme(readme: Path, metrics_dir: Path) -> bool:
    """Rewrite every block; return whether the file changed."""
    text = readme.read_text(encoding="utf-8")
    new = text
    for name in RENDERERS:
        new = replace_block(new, name, render(name, metrics_dir), str(readme))
    if new != text:
        from oncopersistnet.atomic import write_text

        write_text(readme, new)
    return new != text


def main(argv: list[str] | None = None) -> int:
    """``python -m oncopersistnet.readme_blocks README.md metrics/``."""
    from oncopersistnet.logging_setup import configure_logging

    parser = argparse.ArgumentParser(
        description="Rewrite the README's transfer, explain and cross-study blocks from metrics/."
    )
    parser.add_argument("readme", type=Path)
    parser.add_argument("metrics", type=Path)
    args = parser.parse_args(argv)
    configure_logging()
    try:
        changed = update_readme(args.readme, args.metrics)
    except (KeyError, InputDataError) as exc:
        logger.error("results: %s", exc)
        return 1
    logger.info(
        "%s: transfer, explain and cross-study blocks %s",
        args.readme,
        "updated" if changed else "already up to date",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
