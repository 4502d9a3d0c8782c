"""The cross-study results as a metrics file, a Markdown report and one figure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from oncopersistnet.atomic import atomic_path
from oncopersistnet.config import Params
from oncopersistnet.transfer.cross_study import REPORTED_METRICS, HeldOutResult
from oncopersistnet.transfer.studies import LabelledDataset

SETTINGS = ("zero_shot", "fine_tuned", "target_only")
MODELS = ("network", "baseline")


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def aggregate(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean of every reported metric over the rows (seeds); ``<metric>_std`` (ddof=1) when there are
    several."""
    out: dict[str, Any] = {"n_fits": len(rows)}
    for metric in REPORTED_METRICS:
        values = np.array([r[metric] for r in rows], dtype=np.float64)
        finite = values[np.isfinite(values)]
        out[metric] = float(finite.mean()) if finite.size else float("nan")
        if len(rows) > 1:
            out[f"{metric}_std"] = float(finite.std(ddof=1)) if finite.size > 1 else 0.0
    return out


def _pick(rows: Sequence[dict[str, Any]], **where: Any) -> list[dict[str, Any]]:
    return [r for r in rows if all(r.get(k) == v for k, v in where.items())]


def _level_key(fraction: float) -> str:
    return f"keep_{int(round(100 * fraction))}pct"


def summarize(
    results: Sequence[HeldOutResult], studies: Sequence[LabelledDataset], params: Params
) -> dict[str, Any]:
    """What ``metrics/cross_study.json`` holds (no timings: same params, same file)."""
    config = params.cross_study
    held_out: dict[str, Any] = {}
    sweep: dict[str, Any] = {}
    for result in results:
        rows = result.rows
        entry: dict[str, Any] = {
            "trained_on": result.sources,
            "gene_overlap": result.overlap,
            "test_samples": result.partition.test_samples,
            "test_cells": result.n_test_cells,
            "labelled_samples_per_class": result.partition.per_class,
            "labelled_pool": {f"k{k}": samples for k, samples in result.partition.pool.items()},
            "zero_shot": {m: aggregate(_pick(rows, setting="zero_shot", model=m)) for m in MODELS},
        }
        for setting in ("fine_tuned", "target_only"):
            entry[setting] = {
                f"k{k}": {m: aggregate(_pick(rows, setting=setting, k=k, model=m)) for m in MODELS}
                for k in config.k_samples
            }
        held_out[result.held_out] = entry
        if result.sweep:
            levels = {}
            for fraction in config.overlap_fractions:
                level: dict[str, Any] = {"fraction_kept": fraction}
                for scope in ("held_out", "in_domain"):
                    mine = _pick(result.sweep, fraction_kept=float(fraction), scope=scope)
                    facts = {
                        k: mine[0][k]
                        for k in ("genes_present", "selected_present", "selected_fraction")
                        if k in mine[0]
                    }
                    level[scope] = facts | {m: aggregate(_pick(mine, model=m)) for m in MODELS}
                levels[_level_key(fraction)] = level
            sweep = {
                "dataset": result.held_out,
                "model_genes": result.overlap["model_genes"],
                "selected_genes": result.overlap["selected_genes"],
                "levels": levels,
            }
    return _clean(
        {
            "context": {
                "datasets": {s.name: s.describe() for s in studies},
                "study_order": [s.name for s in studies],  # JSON objects come back key-sorted
                "pipeline_data": params.data.input or "simulated",
                "architecture": params.train.architecture,
                "baseline": config.baseline,
                "seeds": [params.train.seed + i for i in range(config.n_seeds)],
                "k_samples": list(config.k_samples),
                "fine_tune_mode": config.fine_tune_mode,
                "refit_scaling": config.refit_scaling,
                "max_cells_per_sample": config.max_cells_per_sample,
                "max_epochs": config.max_epochs,
                "threshold": params.evaluate.threshold,
            },
            "held_out": held_out,
            "overlap_sweep": sweep,
        }
    )


# ------------------------------------------------------------------------- Markdown
def _fmt(entry: dict[str, Any] | None, metric: str = "roc_auc") -> str:
    if not entry or entry.get(metric) is None:
        return "–"
    text = f"{entry[metric]:.3f}"
    if entry.get(f"{metric}_std") is not None:
        text += f" ± {entry[f'{metric}_std']:.3f}"
    return text


def _overlap(o: dict[str, Any]) -> str:
    return f"{o['selected_present']}/{o['selected_genes']} ({o['selected_fraction']:.0%})"


def _ordered(summary: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Held-out entries in the studies' order and sweep levels from most to fewest genes (the file sorts
    keys)."""
    held = summary["held_out"]
    order = [n for n in summary["context"].get("study_order", []) if n in held] or list(held)
    levels = sorted(
        (summary.get("overlap_sweep") or {}).get("levels", {}).values(), key=lambda lv: -lv["fraction_kept"]
    )
    return {n: held[n] for n in order}, levels


def _marked(name: str, notes: dict[str, str]) -> str:
    return f"{name} †" if notes.get(name) else name


def _footnotes(names: Sequence[str], notes: dict[str, str]) -> list[str]:
    """Notes under a table, after a blank line (a line right below a table would become one of its rows)."""
    notes_here = [f"† {name}: {notes[name]}." for name in names if notes.get(name)]
    return ["", *notes_here] if notes_here else []


def _method(context: dict[str, Any]) -> list[str]:
    """The title and how every number below was made."""
    seeds = context["seeds"]
    spread = (
        "mean ± sample std over network seeds " + ", ".join(map(str, seeds))
        if len(seeds) > 1
        else f"one network seed ({seeds[0]})"
    )
    scaling = "refitted" if context["refit_scaling"] else "kept"
    return [
        "# Cross-study transfer: leave one dataset out",
        "",
        f"Each study is held out in turn. A source model ({context['architecture']} network and "
        f"{context['baseline']}, on the pipeline's preprocessing) is trained on the other studies pooled "
        "over the union of their genes (a gene a study lacks is imputed with the training mean, as the "
        "exported graph does), split by sample into train and validation. The held-out study is split by "
        "sample into a labelled pool and a test set that is the same for every row below. **Zero-shot**: the "
        "source models as they are. **Fine-tuned with k samples**: the network adapted with "
        f"`adapt` (mode `{context['fine_tune_mode']}`, scaling {scaling}), "
        "the baseline refitted on the source training cells **plus** the k target samples. **Target-only**: "
        "the same network and baseline trained from scratch on the k target samples alone (their own genes "
        "and preprocessing). k counts samples per class where every sample holds one class (the simulated "
        "studies), samples otherwise (the glioblastoma patients hold both arms); the k samples' cells are "
        "split by cell into training and validation (early stopping, calibration). *Overlap*: of the genes "
        "the source model reads after gene selection, how many the held-out study measures. ROC-AUC unless "
        "stated; "
        f"{spread}; F1 at threshold {context['threshold']:g}.",
    ]


def _studies_section(context: dict[str, Any], datasets: dict[str, Any], notes: dict[str, str]) -> list[str]:
    """One row per study: origin, size, positive share; how cells were drawn; whose data it is."""
    lines = [
        "",
        "## Studies",
        "",
        "| study | what it is | cells used | genes | samples | positive share |",
        "|---|---|---|---|---|---|",
    ]
    for name, d in datasets.items():
        lines.append(
            f"| {_marked(name, notes)} | {d['origin']} | {d['cells']:,} | {d['genes']:,} | {d['samples']} | "
            f"{d['positive_fraction']:.1%} |"
        )
    lines += _footnotes(list(datasets), notes)
    if context.get("max_cells_per_sample"):
        lines.append(
            f"\nAt most {context['max_cells_per_sample']} cells per sample are drawn (seeded) to keep the "
            "stage fast."
        )
    if context["pipeline_data"] != "simulated":
        lines.append(
            "\nThe pipeline's data is **not simulated**: the study with source `pipeline` is the user's "
            f"validated data ({context['pipeline_data']})."
        )
    return lines


def _zero_shot_section(held: dict[str, Any], notes: dict[str, str], k_max: int) -> list[str]:
    """Per held-out study: zero-shot against fine-tuned with the most labelled samples."""
    lines = [
        "",
        f"## Zero-shot vs fine-tuned (k = {k_max})",
        "",
        "| held out | trained on | overlap | test cells (samples) | network zero-shot | network fine-tuned | "
        "baseline zero-shot | baseline fine-tuned | network F1 zero-shot → fine-tuned | "
        "baseline F1 zero-shot → fine-tuned |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e in held.items():
        tuned, zero = e["fine_tuned"][f"k{k_max}"], e["zero_shot"]
        lines.append(
            f"| {_marked(name, notes)} | {' + '.join(e['trained_on'])} | {_overlap(e['gene_overlap'])} | "
            f"{e['test_cells']:,} ({len(e['test_samples'])}) | {_fmt(zero['network'])} | "
            f"{_fmt(tuned['network'])} | {_fmt(zero['baseline'])} | {_fmt(tuned['baseline'])} | "
            f"{_fmt(zero['network'], 'f1')} → {_fmt(tuned['network'], 'f1')} | "
            f"{_fmt(zero['baseline'], 'f1')} → {_fmt(tuned['baseline'], 'f1')} |"
        )
    return lines + _footnotes(list(held), notes)


def _learning_curve_section(held: dict[str, Any], notes: dict[str, str]) -> list[str]:
    """Per held-out study and k: fine-tuned against trained on the k target samples alone."""
    lines = [
        "",
        "## Learning curve: labelled samples of the held-out study",
        "",
        "| held out | k | labelled samples | overlap | network fine-tuned | network target-only | "
        "baseline fine-tuned | baseline target-only |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, e in held.items():
        overlap, marked = _overlap(e["gene_overlap"]), _marked(name, notes)
        lines.append(
            f"| {marked} | 0 (zero-shot) | – | {overlap} | {_fmt(e['zero_shot']['network'])} | – | "
            f"{_fmt(e['zero_shot']['baseline'])} | – |"
        )
        for key, samples in sorted(e["labelled_pool"].items(), key=lambda item: int(item[0][1:])):
            tuned, own = e["fine_tuned"][key], e["target_only"][key]
            per = " per class" if e["labelled_samples_per_class"] else ""
            lines.append(
                f"| {marked} | {key[1:]}{per} | {len(samples)} | {overlap} | {_fmt(tuned['network'])} | "
                f"{_fmt(own['network'])} | {_fmt(tuned['baseline'])} | {_fmt(own['baseline'])} |"
            )
    return lines + _footnotes(list(held), notes)


def _sweep_section(sweep: dict[str, Any], levels: list[dict[str, Any]], notes: dict[str, str]) -> list[str]:
    """Zero-shot scores as shared genes are removed, held out and in domain."""
    lines = [
        "",
        f"## Overlap sweep: zero-shot on {sweep['dataset']} as genes go missing",
        "",
        "Of the model genes the held-out study measures, a fraction is kept and the rest removed at random "
        "(fixed seed; nested: every level keeps a subset of the one above) and imputed with training means, "
        "as the exported graph does. 100 % is the study's natural overlap with the source model, not the "
        "full gene list: studies from different simulated worlds share only part of their background genes. "
        "*In domain*: the source studies' own validation cells, their genes thinned the same way: what the "
        f"missing genes cost without a study shift. The source model reads {sweep['selected_genes']} genes.",
        "",
        "| genes kept (of those shared) | model genes present | genes read present | network held-out | "
        "baseline held-out | genes read present (in domain) | network in domain | baseline in domain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for level in levels:
        h, d = level["held_out"], level["in_domain"]
        lines.append(
            f"| {level['fraction_kept']:.0%} | {h['genes_present']:,}/{sweep['model_genes']:,} | "
            f"{h['selected_present']}/{sweep['selected_genes']} ({h['selected_fraction']:.0%}) | "
            f"{_fmt(h['network'])} | {_fmt(h['baseline'])} | {d['selected_fraction']:.0%} | "
            f"{_fmt(d['network'])} | {_fmt(d['baseline'])} |"
        )
    return lines + _footnotes([sweep["dataset"]], notes)


def cross_study_markdown(summary: dict[str, Any]) -> str:
    """``reports/cross_study.md`` (and, without its title, the README's cross-study section)."""
    context = summary["context"]
    held, levels = _ordered(summary)
    datasets = {n: context["datasets"][n] for n in context.get("study_order", context["datasets"])}
    notes = {name: d.get("note", "") for name, d in datasets.items()}
    lines = _method(context)
    lines += _studies_section(context, datasets, notes)
    lines += _zero_shot_section(held, notes, max(context["k_samples"]))
    lines += _learning_curve_section(held, notes)
    sweep = summary.get("overlap_sweep") or {}
    if sweep:
        lines += _sweep_section(sweep, levels, notes)
    lines += ["", "Figure: `reports/figures/cross_study.png`. Every figure: `metrics/cross_study.json`.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- figure
#: Line colour per model in the figure.
COLOURS = {"network": "#1f77b4", "baseline": "#d62728"}


def plot_cross_study(summary: dict[str, Any], path: Path) -> Path:
    """Learning curve per held-out study (ROC-AUC vs labelled samples) and the overlap sweep."""
    held, levels = _ordered(summary)
    notes = {name: d.get("note", "") for name, d in summary["context"]["datasets"].items()}
    sweep = summary.get("overlap_sweep") or {}
    n_panels = len(held) + (1 if sweep else 0)
    n_cols = min(n_panels, 2 if n_panels == 4 else 3)
    n_rows = math.ceil(n_panels / n_cols)
    fig = Figure(figsize=(5.6 * n_cols, 4.4 * n_rows))
    FigureCanvasAgg(fig)  # its own Agg canvas: no global backend, nothing registered with pyplot
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    label = {
        "network": summary["context"]["architecture"],
        "baseline": summary["context"]["baseline"].replace("_", " "),
    }
    for ax, (name, e) in zip(axes.flat, held.items(), strict=False):
        _learning_curve_panel(ax, name, e, label=label, note=notes.get(name))
    axes.flat[0].legend(fontsize=7.5, loc="lower right")
    if sweep:
        _sweep_panel(axes.flat[len(held)], sweep, levels, label=label)
    for ax in list(axes.flat)[n_panels:]:
        ax.set_visible(False)
    fig.suptitle(
        "Cross-study transfer, leave one dataset out (ROC-AUC on fixed test samples of the held-out study)",
        fontsize=11,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    return path


def _roc_auc(entry: dict[str, Any] | None) -> float:
    """Mean ROC-AUC of an entry; NaN (a gap in the line) where there is none."""
    return float("nan") if not entry or entry.get("roc_auc") is None else entry["roc_auc"]


def _roc_auc_std(entry: dict[str, Any] | None) -> float:
    """Its spread over seeds; 0 (no error bar) where there is none."""
    return 0.0 if not entry or entry.get("roc_auc_std") is None else entry["roc_auc_std"]


def _learning_curve_panel(
    ax: Axes, name: str, e: dict[str, Any], *, label: dict[str, str], note: str | None
) -> None:
    """One held-out study: zero-shot -> fine-tuned and target-only ROC-AUC against labelled samples."""
    ks = sorted(int(key[1:]) for key in e["labelled_pool"])
    for model in MODELS:
        tuned = [e["zero_shot"][model]] + [e["fine_tuned"][f"k{k}"][model] for k in ks]
        own = [e["target_only"][f"k{k}"][model] for k in ks]
        ax.errorbar(
            [0, *ks],
            [_roc_auc(t) for t in tuned],
            yerr=[_roc_auc_std(t) for t in tuned],
            color=COLOURS[model],
            marker="o",
            lw=2,
            capsize=3,
            label=f"{label[model]}: zero-shot → fine-tuned",
        )
        ax.errorbar(
            ks,
            [_roc_auc(t) for t in own],
            yerr=[_roc_auc_std(t) for t in own],
            color=COLOURS[model],
            marker="s",
            ls="--",
            lw=1.5,
            capsize=3,
            alpha=0.8,
            label=f"{label[model]}: target-only",
        )
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    o = e["gene_overlap"]
    title = (
        f"held out: {name}\ntrained on {' + '.join(e['trained_on'])}; "
        f"overlap {o['selected_present']}/{o['selected_genes']} genes read"
    )
    if note:
        title += "\n(drug exposure contrast, NOT persister)" if "NOT a persister" in note else f"\n({note})"
    ax.set_title(title, fontsize=9.5)
    ax.set_xticks([0, *ks], ["0\nzero-shot", *[str(k) for k in ks]])
    ax.set_xlabel(
        "labelled samples of the held-out study" + (" per class" if e["labelled_samples_per_class"] else ""),
        fontsize=9,
    )
    ax.set_ylabel("ROC-AUC on its test samples", fontsize=9)
    ax.set_ylim(0.3, 1.02)
    ax.grid(alpha=0.3)


def _sweep_panel(
    ax: Axes, sweep: dict[str, Any], levels: list[dict[str, Any]], *, label: dict[str, str]
) -> None:
    """Zero-shot ROC-AUC as shared genes are removed, held out and in domain, with the share still read."""
    x = [lv["fraction_kept"] for lv in levels]
    for scope, style in (("held_out", "-"), ("in_domain", "--")):
        for model in MODELS:
            entries = [lv[scope][model] for lv in levels]
            where = f"held-out {sweep['dataset']}" if scope == "held_out" else "in domain"
            ax.errorbar(
                x,
                [_roc_auc(t) for t in entries],
                yerr=[_roc_auc_std(t) for t in entries],
                color=COLOURS[model],
                ls=style,
                marker="o" if scope == "held_out" else "s",
                lw=2 if scope == "held_out" else 1.5,
                capsize=3,
                alpha=1.0 if scope == "held_out" else 0.75,
                label=f"{label[model]}, {where}",
            )
    for lv in levels:  # what the model actually gets: share of the genes it reads that the input provides
        ax.annotate(
            f"{lv['held_out']['selected_fraction']:.0%} | {lv['in_domain']['selected_fraction']:.0%}",
            (lv["fraction_kept"], 0.33),
            ha="center",
            fontsize=7.5,
            color="#444444",
        )
    ax.text(
        0.02,
        0.375,
        "share of the genes read present: held-out | in domain (source studies' validation cells)",
        fontsize=7.5,
        color="#444444",
        transform=ax.get_yaxis_transform(),
    )
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    ax.set_xlim(0.0, 1.06)
    ax.set_ylim(0.3, 1.06)
    ax.set_xlabel("share of the genes the input shares with the model that are kept", fontsize=9)
    ax.set_ylabel("zero-shot ROC-AUC", fontsize=9)
    ax.set_title(
        f"overlap sweep, held out {sweep['dataset']}: shared genes removed\n"
        "at random (seeded), imputed with training means",
        fontsize=9.5,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper center", ncol=2)
