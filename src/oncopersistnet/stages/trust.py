"""Stage trust: the deployed model's out-of-distribution flag on three kinds of cells.

Held-out test cells of the training world (the flag should fire at about its nominal rate),
simulated cells of another world (``trust.other_world_seed``) and real cells of another study
(``trust.external``, by default the glioblastoma data). Scored by the exported ONNX model as
``predict`` scores them; figures to ``metrics/trust.json``, a histogram of the distances, and
the rates to the training run in MLflow.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from oncopersistnet.atomic import write_metrics_json
from oncopersistnet.config import Params
from oncopersistnet.data.readers import read_counts
from oncopersistnet.data.simulate import simulate_cells
from oncopersistnet.errors import ConfigError
from oncopersistnet.evaluation.trust import TrustDataset, control_for, plot_distances, score_dataset
from oncopersistnet.inference.calls import rule_for
from oncopersistnet.inference.model import OnnxPersisterModel
from oncopersistnet.inference.signal import NO_CALL, SignalFloors
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.preprocessing.outputs import read_split_cells
from oncopersistnet.tracking import configure_mlflow, load_run_id, log_params_once, resumed_run

logger = logging.getLogger(__name__)


def _draw(counts, limit: int, seed: int):
    """At most ``limit`` rows, drawn without replacement in their original order (seeded)."""
    if counts.shape[0] <= limit:
        return counts
    rows = np.sort(np.random.default_rng(seed).choice(counts.shape[0], size=limit, replace=False))
    return counts[rows]


def _datasets(params: Params, paths: ProjectPaths) -> list[TrustDataset]:
    """The test split, another simulated world and (when set) the external study."""
    config = params.trust
    if config.other_world_seed == params.simulate.world_seed:
        raise ConfigError(
            f"trust.other_world_seed {config.other_world_seed} equals simulate.world_seed: pick another world"
        )
    test = read_split_cells(paths, "test")
    other = simulate_cells(replace(params.simulate, world_seed=config.other_world_seed))
    out = [
        TrustDataset(
            "same_world",
            "same world (test samples)",
            test.X,
            test.genes,
            "held-out samples of the training data",
        ),
        TrustDataset(
            "other_world",
            f"other world (world_seed {config.other_world_seed})",
            _draw(other.X, config.max_cells, config.seed),
            np.asarray(other.var_names, dtype=str),
            "the simulator with another world_seed: other gene means, programme and background genes",
        ),
    ]
    if config.external is not None:
        external = read_counts(paths.external_file("trust.external", config.external))
        out.append(
            TrustDataset(
                "external",
                config.external_name,
                _draw(external.X, config.max_cells, config.seed),
                np.asarray(external.var_names, dtype=str),
                f"real cells of another study: {config.external}",
            )
        )
    return out


def run(params: Params, paths: ProjectPaths) -> None:
    """Score each dataset with the exported model; write the figures and the distance histogram."""
    import mlflow

    configure_mlflow(params.mlflow, paths.root)
    model = OnnxPersisterModel(paths.onnx)
    rule = rule_for(model, coverage=params.predict.coverage)
    floors = SignalFloors.from_params(params.predict)
    figures, distances = {}, {}
    datasets = _datasets(params, paths)
    for dataset in datasets:
        calls, figures[dataset.key], measured = score_dataset(model, dataset, rule=rule, floors=floors)
        distances[dataset.name] = calls.ood_distance[calls.predicted_label != NO_CALL]
        if dataset.key != "same_world":
            control = control_for(datasets[0], dataset, measured)
            _, figures[control.key], _ = score_dataset(model, control, rule=rule, floors=floors)
        logger.info(
            "%s: %.1f%% of %d called cells out of distribution (%.0f%% of the model's genes measured)",
            dataset.name,
            100 * figures[dataset.key]["ood_fraction_of_called"],
            figures[dataset.key]["called_cells"],
            100 * figures[dataset.key]["gene_fraction"],
        )
    nominal = round(1 - params.export.ood_quantile, 12)
    write_metrics_json(
        paths.trust_metrics,
        {"ood_threshold": model.ood_threshold, "nominal_rate": nominal, "datasets": figures},
    )
    plot_distances(distances, threshold=model.ood_threshold, nominal=nominal, path=paths.trust_figure)
    with resumed_run(load_run_id(paths.run_reference)):
        log_params_once(params.flat(["trust"]))
        mlflow.log_metrics(
            {f"trust_ood_fraction_{key}": f["ood_fraction_of_called"] for key, f in figures.items()}
        )
        mlflow.log_artifact(str(paths.trust_figure), artifact_path="figures")
