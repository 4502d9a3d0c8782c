"""``oncopersistnet`` command line: predict with a registered model, make example data.

Every command has ``--help``. Errors a user can cause end in one line on stderr
and exit status 1; no partial output file is left behind.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from oncopersistnet import __version__
from oncopersistnet.choices import COUNTS_SOURCES, FINE_TUNE_MODES, ORIENTATIONS, spoken
from oncopersistnet.config import Params, Rule, project_params
from oncopersistnet.errors import ConfigError, OncoPersistNetError
from oncopersistnet.interrupts import exit_code, raise_on_sigterm
from oncopersistnet.logging_setup import configure_logging
from oncopersistnet.registry import CHAMPION, champion_uri, is_store_uri
from oncopersistnet.tracking import disable_telemetry, resolve_tracking_uri, use_tracking_uri

if TYPE_CHECKING:
    from oncopersistnet.inference.signal import SignalFloors

logger = logging.getLogger("oncopersistnet")

#: --counts-source's values as the help writes them: "auto, X, raw or layers/NAME" (and without auto).
_COUNTS_SOURCES_ALL = spoken([*COUNTS_SOURCES, "layers/NAME"])
_COUNTS_SOURCES_OTHER = spoken([*COUNTS_SOURCES[1:], "layers/NAME"])


def _check_ranges(*options: tuple[str, float | int | None, float, float | None]) -> None:
    """(option, value, low, high): a given value outside [low, high] is a ConfigError naming the option.

    Checked by the same :class:`~oncopersistnet.config.Rule` as params.yaml's keys.
    """
    for option, value, low, high in options:
        if value is not None:
            Rule(
                lambda v, low=low, high=high: not (v < low or (high is not None and v > high)),
                lambda v, low=low, high=high: (
                    f"{v} is out of range ({low} to {high if high is not None else 'any'})"
                ),
            ).check(value, option)


def _champion_help() -> str:
    """What --help says the default model is: the champion of register.model_name in params.yaml."""
    try:
        name = project_params("params.yaml").register.model_name
    except ConfigError:  # no params.yaml here nor beside the package: name the key instead
        return f"(default: {champion_uri('<register.model_name>')})"
    return f"(default: {champion_uri('<register.model_name>')}, i.e. {champion_uri(name)})"


def _model_reference(args: argparse.Namespace, params: Params) -> tuple[str, str | None]:
    """``--model`` (default: the champion) and the MLflow store it resolves in, when it is a store URI."""
    reference = args.model or champion_uri(params.register.model_name)
    if not is_store_uri(reference):
        return reference, None
    return reference, args.tracking_uri or resolve_tracking_uri(params.mlflow, Path("."))


def _coverage(args: argparse.Namespace, params: Params) -> float:
    """``--coverage`` where given, else ``predict.coverage`` (``predict`` and ``serve``)."""
    if args.coverage is not None:
        Rule(lambda v: 0.0 < v < 1.0, "must lie strictly between 0 and 1").check(args.coverage, "--coverage")
    return params.predict.coverage if args.coverage is None else args.coverage


def _signal_floors(args: argparse.Namespace, params: Params) -> SignalFloors:
    """The no-call floors (``predict`` and ``serve``): the options where given, else ``predict.*``."""
    from oncopersistnet.inference.signal import SignalFloors

    _check_ranges(
        ("--min-counts", args.min_counts, 0.0, None),
        ("--min-detected-genes", args.min_detected_genes, 0, None),
        ("--min-detected-selected-genes", args.min_detected_selected_genes, 0, None),
    )

    return SignalFloors.from_params(
        params.predict,
        min_counts=args.min_counts,
        min_detected_genes=args.min_detected_genes,
        min_detected_selected_genes=args.min_detected_selected_genes,
    )


def _cmd_predict(args: argparse.Namespace) -> int:
    from oncopersistnet.inference import predict_file
    from oncopersistnet.registry.resolve import load_model

    params = project_params(args.params)
    _check_ranges(
        ("--chunk-size", args.chunk_size, 1, None),
        ("--threads", args.threads, 1, None),
        ("--threshold", args.threshold, 0.0, 1.0),
        ("--min-gene-fraction", args.min_gene_fraction, 0.0, 1.0),
    )
    floors, coverage = _signal_floors(args, params), _coverage(args, params)
    reference, tracking_uri = _model_reference(args, params)
    use_tracking_uri(tracking_uri)
    model = load_model(reference, threads=args.threads)
    summary = predict_file(
        model,
        args.input,
        args.output,
        chunk_size=params.predict.chunk_size if args.chunk_size is None else args.chunk_size,
        min_gene_fraction=params.predict.min_gene_fraction
        if args.min_gene_fraction is None
        else args.min_gene_fraction,
        threshold=args.threshold,
        progress=not args.no_progress,
        allow_non_integer=args.allow_non_integer,
        counts_source=args.counts_source,
        orientation=args.orientation,
        coverage=coverage,
        ood_warn_fraction=params.predict.ood_warn_fraction,
        obs_output=args.obs_output,
        signal_floors=floors,
    )
    print(json.dumps(summary, indent=2))  # the command's result, on stdout for scripts
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    """Gene-level explanations (integrated gradients) of the cells in --input."""
    from oncopersistnet.explain.command import explain_file, format_top_table
    from oncopersistnet.registry.trainable import load_trainable

    params = project_params(args.params)
    _check_ranges(
        ("--top", args.top, 1, None),
        ("--steps", args.steps, 1, None),
        ("--cells", args.cells, 1, None),
        ("--threshold", args.threshold, 0.0, 1.0),
        ("--min-gene-fraction", args.min_gene_fraction, 0.0, 1.0),
    )
    reference, tracking_uri = _model_reference(args, params)
    use_tracking_uri(tracking_uri)
    model = load_trainable(reference)
    top = params.explain.top if args.top is None else args.top
    explanation, summary = explain_file(
        model,
        args.input,
        top=top,
        steps=params.explain.steps if args.steps is None else args.steps,
        max_cells=params.explain.cells if args.cells is None else args.cells,
        label_key=args.label_key,
        persister_values=args.persister_values or params.data.persister_values,
        non_persister_values=args.non_persister_values or params.data.non_persister_values,
        threshold=params.evaluate.threshold if args.threshold is None else args.threshold,
        min_gene_fraction=params.predict.min_gene_fraction
        if args.min_gene_fraction is None
        else args.min_gene_fraction,
        counts_source=args.counts_source,
        orientation=args.orientation,
        output=args.output,
    )
    print(format_top_table(explanation, summary, top))  # the command's result, on stdout
    return 0


def _cmd_transfer(args: argparse.Namespace) -> int:
    """Adapt a registered (or local) model to a labelled dataset: zero-shot, fine-tuned, registered."""
    from dataclasses import replace

    from oncopersistnet.config import params_from_dict
    from oncopersistnet.registry.trainable import load_trainable
    from oncopersistnet.tracking import configure_mlflow
    from oncopersistnet.transfer.workflow import run_transfer

    params = project_params(args.params)
    overrides = {
        "input": args.input,
        "dataset_name": args.dataset_name,
        "label_key": args.label_key,
        "sample_key": args.sample_key,
        "persister_values": args.persister_values,
        "non_persister_values": args.non_persister_values,
        "mode": args.mode,
        "refit_scaling": args.refit_scaling,
        "learning_rate": args.learning_rate,
        "max_epochs": args.max_epochs,
        "model_name": args.model_name,
        "counts_source": args.counts_source,
    }
    raw = params.to_dict()
    raw["transfer"] |= {k: v for k, v in overrides.items() if v is not None}
    params = params_from_dict(raw)  # validated like params.yaml, so a bad option is named
    params = replace(
        params, mlflow=replace(params.mlflow, tracking_uri=args.tracking_uri or params.mlflow.tracking_uri)
    )
    # the store the registry URI resolves in; fails early if unusable
    experiment_id = configure_mlflow(params.mlflow, Path("."))
    reference = args.model or champion_uri(params.register.model_name)
    parent = load_trainable(reference)
    output = Path(args.output_dir or f"transfer-{params.transfer.dataset_name}")
    record = output.with_name(f"{output.name}.registration.json")  # beside the folder, as the stage does
    summary = run_transfer(params, parent, output, experiment_id=experiment_id, record=record)
    keys = ("f1", "roc_auc", "pr_auc", "brier")
    print(
        json.dumps(
            {
                "parent_model_uri": summary["parent_model_uri"],
                "gene_match": summary["study"]["gene_match"],
                "zero_shot": {k: round(summary["zero_shot"][k], 4) for k in keys},
                "fine_tuned": {k: round(summary["fine_tuned"][k], 4) for k in keys},
                "trained_on_new_data_only": {
                    f: round(e["roc_auc"]["mean"], 4) for f, e in summary["trained_on_new_data_only"].items()
                },
                "registration": summary["registration"],
                "output_dir": str(output),
                "registration_record": str(record),
            },
            indent=2,
        )
    )
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from oncopersistnet.atomic import write_h5ad
    from oncopersistnet.data.simulate import simulate_cells

    params = project_params(args.params)
    config = replace(
        params.simulate,
        **{
            k: v
            for k, v in {
                "n_cells": args.cells,
                "n_genes": args.genes,
                "n_samples": args.samples,
                "seed": args.seed,
            }.items()
            if v is not None
        },
    )
    adata = simulate_cells(config)
    if args.unlabelled:
        adata.obs = adata.obs.drop(columns=["label"])
    write_h5ad(args.output, adata)
    logger.info("wrote %d simulated cells to %s", adata.n_obs, args.output)
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    """list | show | promote | rollback, on the project's MLflow store (or --tracking-uri)."""
    from oncopersistnet import registry

    params = project_params(args.params)
    use_tracking_uri(args.tracking_uri or resolve_tracking_uri(params.mlflow, Path(".")))
    name = args.name or params.register.model_name
    if args.action == "list":
        rows = registry.list_versions(name)
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print(f"{'version':>7}  {'aliases':<20} {'created':<26} {'test F1':>8} {'ROC-AUC':>8}  data")
            for row in rows:
                print(
                    f"{row['version']:>7}  {','.join(row['aliases']) or '-':<20} {row['created']:<26} "
                    f"{row['test_f1'] or '-':>8} {row['test_roc_auc'] or '-':>8}  {row['data_hash'] or '-'}"
                )
    elif args.action == "show":
        card = registry.show_version(name, args.version or CHAMPION)
        if args.json:
            print(json.dumps(card, indent=2))
        else:
            print(
                f"{name} v{card['version']}  aliases: {', '.join(card['aliases']) or '-'}  "
                f"created {card['created']}  run {card['run_id']}"
            )
            print()
            print(card["description"])
    elif args.action == "promote":
        if not args.version:
            raise ConfigError(
                "models promote: give the VERSION to make champion (see `oncopersistnet models list`)"
            )
        previous = registry.promote(name, args.version, args.reason or "promoted by hand")
        print(f"{name}: champion is now v{args.version} (was {'v' + previous if previous else 'unset'})")
    else:  # rollback
        old, new = registry.rollback(name, args.reason or "rolled back by hand")
        print(f"{name}: champion rolled back from v{old} to v{new}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    """Serve the model over HTTP until interrupted."""
    import os

    from oncopersistnet.serving import ServiceConfig, make_server

    params = project_params(args.params)
    floors, coverage = _signal_floors(args, params), _coverage(args, params)
    reference, tracking_uri = _model_reference(args, params)
    token = args.token or os.environ.get("ONCOPERSISTNET_TOKEN") or None
    _check_ranges(
        ("--max-parallel", args.max_parallel, 1, None),
        ("--max-connections", args.max_connections, 1, None),
        ("--body-timeout", args.body_timeout, 0.1, None),
        ("--idle-timeout", args.idle_timeout, 0.1, None),
    )
    if args.host not in ("127.0.0.1", "localhost", "::1") and not token:
        logger.warning(
            "serving on %s without a token: anyone who reaches this port can use it (set --token)", args.host
        )
    config = ServiceConfig(
        model=reference,
        tracking_uri=tracking_uri,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        max_cells=args.max_cells,
        min_gene_fraction=params.predict.min_gene_fraction,
        coverage=coverage,
        ood_warn_fraction=params.predict.ood_warn_fraction,
        signal_floors=floors,
        threads=args.threads,
        token=token,
        max_parallel=args.max_parallel,
        body_timeout_s=args.body_timeout,
        idle_timeout_s=args.idle_timeout,
        limit_concurrency=args.max_connections,
    )
    server = make_server(config, host=args.host, port=args.port)
    logger.info("serving %s on http://%s:%d (docs: /docs)", reference, args.host, args.port)
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn shuts down gracefully, then re-raises the signal it caught
        pass
    logger.info("stopped serving")
    return 0


def _add_tracking_uri(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or the project's store)",
    )


def _add_signal_floors(command: argparse.ArgumentParser) -> None:
    """``--coverage``, ``--min-counts`` and the two other no-call floors (defaults: ``predict.*``)."""
    command.add_argument(
        "--coverage",
        type=float,
        default=None,
        help="conformal coverage per class: each class's cells are in their prediction set at least this "
        "often; a set with both classes (or none) is labelled uncertain (default: predict.coverage)",
    )
    for option, kind, what in (
        ("min-counts", float, "total counts over the model's genes"),
        ("min-detected-genes", int, "model genes detected (count > 0)"),
        ("min-detected-selected-genes", int, "detected genes among those the model reads"),
    ):
        command.add_argument(
            f"--{option}",
            type=kind,
            default=None,
            help=f"a cell with fewer {what} gets no_call and a reason, no probability "
            f"(default: predict.{option.replace('-', '_')})",
        )


def _add_predict(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser(
        "predict",
        help="classify cells (.h5ad, 10x, CSV/TSV) with a registered or exported ONNX model",
        description="Score every cell of an .h5ad file (raw counts in X) with onnxruntime and write "
        "one row per cell to a CSV or Parquet file: cell_id, persister_probability, predicted_label "
        "(persister | non-persister | uncertain | no_call), prediction_set (the conformal set), "
        "out_of_distribution, ood_distance and no_call_reason. Genes are matched by name to the "
        "model's gene list; missing genes are imputed with training means.",
    )
    predict.add_argument(
        "--input",
        required=True,
        help="cells to classify: .h5ad, a 10x directory (matrix.mtx + features.tsv + barcodes.tsv), a 10x "
        ".h5, "
        "or a .csv/.tsv(.gz) count table",
    )
    predict.add_argument(
        "--counts-source",
        default="auto",
        help=".h5ad only: where the raw counts are: auto (layers['counts'], else integer X, else integer "
        ".raw), "
        f"{_COUNTS_SOURCES_OTHER} (default: %(default)s)",
    )
    predict.add_argument(
        "--orientation",
        default="auto",
        choices=list(ORIENTATIONS),
        help="CSV/TSV only: which axis holds the genes (default: detected and logged)",
    )
    predict.add_argument(
        "--output",
        required=True,
        help="output .csv or .parquet, one row per cell (written chunk by chunk, renamed when complete)",
    )
    predict.add_argument(
        "--obs-output",
        default=None,
        metavar="H5AD",
        help=".h5ad input only: also write a copy of the input with obs['persister_probability'] and "
        "obs['persister_label']",
    )
    predict.add_argument(
        "--model",
        default=None,
        help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID/model, or a path to an .onnx file "
        + _champion_help(),
    )
    _add_tracking_uri(predict)
    predict.add_argument(
        "--chunk-size", type=int, default=None, help="cells per batch (default: predict.chunk_size)"
    )
    predict.add_argument(
        "--min-gene-fraction",
        type=float,
        default=None,
        help="stop below this fraction of model genes found (default: predict.min_gene_fraction)",
    )
    predict.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="decision threshold of a model exported without conformal scores (default: the model's own); "
        "other models label cells by their conformal set",
    )
    _add_signal_floors(predict)
    predict.add_argument(
        "--threads", type=int, default=None, help="onnxruntime intra-op threads (default: all cores)"
    )
    predict.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    predict.add_argument(
        "--allow-non-integer",
        action="store_true",
        help="score X even if it holds non-integer values (normalised data gives unreliable results)",
    )
    predict.set_defaults(handler=_cmd_predict)


def _add_explain(commands: argparse._SubParsersAction) -> None:
    explain = commands.add_parser(
        "explain",
        help="which genes drive the model's calls on your cells (integrated gradients)",
        description="Attribute the model's calibrated persister logit to each gene the model reads, for "
        "every cell "
        "(integrated gradients from an average training cell, and each class from the other class's mean "
        "cell), with classes from the labels in --label-key when given, otherwise from the model's own "
        "calls. Prints the signed gene ranking (higher expression towards persister or non-persister) and "
        "the overlap with published persister signatures; --output writes the per-gene table. Needs the "
        "model's PyTorch form "
        "(model.pt + preprocessor.npz), not the ONNX file.",
    )
    explain.add_argument(
        "--input", required=True, help="cells: .h5ad, a 10x directory or .h5, or a .csv/.tsv(.gz) count table"
    )
    explain.add_argument("--top", type=int, default=None, help="genes per ranking (default: explain.top)")
    explain.add_argument(
        "--model",
        default=None,
        help="models:/NAME@ALIAS, models:/NAME/VERSION, or a folder with model.pt and preprocessor.npz "
        "such as models/ " + _champion_help(),
    )
    explain.add_argument(
        "--output", default=None, help="write the per-gene table to this CSV (written whole, then renamed)"
    )
    explain.add_argument(
        "--label-key",
        default=None,
        help="obs column with labels (.h5ad); without it cells are grouped by the model's calls",
    )
    explain.add_argument(
        "--persister-values",
        nargs="+",
        default=None,
        help="labels meaning persister (default: data.persister_values)",
    )
    explain.add_argument(
        "--non-persister-values",
        nargs="+",
        default=None,
        help="labels meaning non-persister (default: data.non_persister_values)",
    )
    explain.add_argument(
        "--cells",
        type=int,
        default=None,
        help="explain at most this many cells, evenly spaced (default: explain.cells)",
    )
    explain.add_argument(
        "--steps", type=int, default=None, help="integration steps per cell (default: explain.steps)"
    )
    explain.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="decision threshold for grouping by the model's calls (default: evaluate.threshold)",
    )
    explain.add_argument(
        "--min-gene-fraction",
        type=float,
        default=None,
        help="stop below this fraction of model genes found (default: predict.min_gene_fraction)",
    )
    explain.add_argument(
        "--counts-source",
        default="auto",
        help=f".h5ad only: {_COUNTS_SOURCES_ALL} (default: %(default)s)",
    )
    explain.add_argument(
        "--orientation",
        default="auto",
        choices=list(ORIENTATIONS),
        help="CSV/TSV only: which axis holds the genes",
    )
    _add_tracking_uri(explain)
    explain.set_defaults(handler=_cmd_explain)


def _add_models(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser(
        "models",
        help="list, show, promote or roll back registered model versions (MLflow aliases)",
        description="Read and move the MLflow registry's aliases. `list`: every version with its aliases and "
        "test metrics; `show [VERSION|ALIAS]`: a version's model card (default: champion); `promote "
        "VERSION`: "
        "make it champion; `rollback`: give champion back to the version that held it before.",
    )
    models.add_argument("action", choices=["list", "show", "promote", "rollback"])
    models.add_argument("version", nargs="?", default=None, help="version number or alias (show, promote)")
    models.add_argument("--name", default=None, help="registered model (default: register.model_name)")
    models.add_argument(
        "--reason", default=None, help="why (promote, rollback); recorded in the champion history"
    )
    _add_tracking_uri(models)
    models.add_argument("--json", action="store_true", help="machine-readable output (list, show)")
    models.set_defaults(handler=_cmd_models)


def _add_serve(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve the champion model over HTTP (FastAPI): POST /predict, GET /model, GET /health, /docs",
        description="Load the model once and answer HTTP requests: POST /predict (JSON), POST /predict/h5ad "
        "(an .h5ad file as the body), GET /model, GET /health, POST /reload (re-resolve the alias), docs at "
        "/docs.",
    )
    serve.add_argument(
        "--model",
        default=None,
        help="models:/NAME@ALIAS, models:/NAME/VERSION or an .onnx path (default: the champion)",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default: %(default)s, this machine only)"
    )
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--token", default=None, help="require 'Authorization: Bearer TOKEN' (or set ONCOPERSISTNET_TOKEN)"
    )
    serve.add_argument(
        "--max-body-mb", type=float, default=50.0, help="largest request body (default: %(default)s MB)"
    )
    serve.add_argument(
        "--max-cells", type=int, default=20_000, help="most cells per request (default: %(default)s)"
    )
    serve.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    serve.add_argument(
        "--max-parallel",
        type=int,
        default=2,
        help="requests parsed and scored at once, the others queue; bounds memory (default: %(default)s)",
    )
    serve.add_argument(
        "--body-timeout",
        type=float,
        default=60.0,
        help="seconds a request body may take to arrive (default: %(default)s)",
    )
    serve.add_argument(
        "--idle-timeout",
        type=float,
        default=10.0,
        help="seconds a connection may stall: in a body, or before sending a whole request head (default: "
        "%(default)s)",
    )
    serve.add_argument(
        "--max-connections",
        type=int,
        default=256,
        help="open connections at once; beyond, 503 (default: %(default)s)",
    )
    _add_signal_floors(serve)
    _add_tracking_uri(serve)
    serve.set_defaults(handler=_cmd_serve)


def _add_transfer(commands: argparse._SubParsersAction) -> None:
    transfer = commands.add_parser(
        "transfer",
        help="adapt a trained model to another labelled dataset (zero-shot, then fine-tuned) and register it",
        description="Score a registered model zero-shot on a new labelled dataset (any supported format; "
        "genes "
        "harmonised, missing genes imputed with the training means), fine-tune it on the dataset's training "
        "samples "
        "(split by --sample-key, never by cell), compare both with models trained on the new data alone on "
        "the same "
        "test cells, and register the adapted ONNX model as its own MLflow run and model version. Defaults: "
        "params.yaml's "
        "transfer section.",
    )
    transfer.add_argument(
        "--input", default=None, help="labelled dataset (.h5ad, 10x, CSV/TSV; default: transfer.input)"
    )
    transfer.add_argument(
        "--model",
        default=None,
        help="models:/NAME@ALIAS, models:/NAME/VERSION or a folder with model.pt + preprocessor.npz "
        "(default: the champion)",
    )
    transfer.add_argument(
        "--dataset-name", default=None, help="short name of the dataset (run name, default registered name)"
    )
    transfer.add_argument("--label-key", default=None, help="obs column with the labels")
    transfer.add_argument(
        "--sample-key", default=None, help="obs column with the biological sample (split unit)"
    )
    transfer.add_argument(
        "--persister-values",
        nargs="+",
        default=None,
        metavar="VALUE",
        help="label values of the positive class",
    )
    transfer.add_argument(
        "--non-persister-values",
        nargs="+",
        default=None,
        metavar="VALUE",
        help="label values of the negative class",
    )
    transfer.add_argument("--counts-source", default=None, help=f".h5ad only: {_COUNTS_SOURCES_ALL}")
    transfer.add_argument(
        "--mode",
        choices=list(FINE_TUNE_MODES),
        default=None,
        help="head: retrain the dense head on frozen layers; all: every weight",
    )
    transfer.add_argument(
        "--refit-scaling",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="refit imputation means, min-max range and PCA centre on the new training cells",
    )
    transfer.add_argument("--learning-rate", type=float, default=None)
    transfer.add_argument("--max-epochs", type=int, default=None)
    transfer.add_argument(
        "--model-name",
        default=None,
        help="registered model for the adapted version (default: <register.model_name>-<dataset-name>)",
    )
    transfer.add_argument(
        "--output-dir",
        default=None,
        help="where the adapted model and its report go (default: transfer-<dataset-name>/)",
    )
    _add_tracking_uri(transfer)
    transfer.set_defaults(handler=_cmd_transfer)


def _add_simulate(commands: argparse._SubParsersAction) -> None:
    simulate = commands.add_parser(
        "simulate",
        help="write simulated cells (for examples and tests)",
        description="Write cells from the built-in simulator to an .h5ad file; defaults from params.yaml's "
        "simulate section.",
    )
    simulate.add_argument("--output", required=True, help="output .h5ad")
    simulate.add_argument("--cells", type=int, default=None, help="number of cells")
    simulate.add_argument("--genes", type=int, default=None, help="number of genes")
    simulate.add_argument("--samples", type=int, default=None, help="number of samples")
    simulate.add_argument(
        "--seed", type=int, default=None, help="random seed (use another than training's for new cells)"
    )
    simulate.add_argument(
        "--unlabelled", action="store_true", help="drop the label column, as for new cells to classify"
    )
    simulate.set_defaults(handler=_cmd_simulate)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests): global options, one parser per command."""
    parser = argparse.ArgumentParser(
        prog="oncopersistnet",
        description="Classify single cancer cells from scRNA-seq as drug-tolerant persisters or "
        "non-persisters.",
        epilog="The training pipeline runs through DVC: `dvc repro` (or `make run`). See README.md.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING or ERROR")
    parser.add_argument(
        "--params", default="params.yaml", help="params.yaml for defaults (default: %(default)s, if present)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in (_add_predict, _add_explain, _add_models, _add_serve, _add_transfer, _add_simulate):
        add_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``oncopersistnet`` console script."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    disable_telemetry()  # before anything imports mlflow
    previous = signal.getsignal(signal.SIGTERM)
    raise_on_sigterm()
    try:
        return args.handler(args)
    except OncoPersistNetError as exc:
        logger.error("%s", exc)
        return 1
    except KeyboardInterrupt as interrupt:
        logger.error("%s stopped (%s); no partial output was kept", args.command, interrupt or "interrupted")
        return exit_code(interrupt)
    finally:
        if previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
