"""Typed configuration: params.yaml loaded once into frozen dataclasses.

params.yaml is the single source of truth; DVC reads the same file to decide
which stages to rerun. Loading checks every key against the dataclasses below, so
a typo (``n_cell``) or a wrong type (``n_cells: many``) stops with a message that
names the key instead of silently using a default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from oncopersistnet.errors import ConfigError

DEFAULT_PARAMS_PATH = Path("params.yaml")


@dataclass(frozen=True)
class DataConfig:
    """Where cells come from. ``input: null`` uses the built-in simulator."""

    input: str | None = None
    counts_source: str = "auto"
    orientation: str = "auto"
    metadata: str | None = None
    metadata_cell_column: str | None = None
    label_key: str = "label"
    sample_key: str = "sample"
    persister_values: list[str] = field(default_factory=lambda: ["persister"])
    non_persister_values: list[str] = field(default_factory=lambda: ["non-persister"])


@dataclass(frozen=True)
class SimulateConfig:
    """Knobs of the seeded scRNA-seq simulator (see ``oncopersistnet.data.simulate``)."""

    n_cells: int = 3000
    n_genes: int = 2000
    n_samples: int = 8
    persister_fraction: float = 0.3
    effect_size: float = 2.2
    cycling_fraction: float = 0.2
    label_noise: float = 0.02
    seed: int = 0
    world_seed: int = 0


@dataclass(frozen=True)
class ValidateConfig:
    """Thresholds for the Great Expectations suite."""

    min_genes_per_cell: int = 20
    min_counts_per_cell: int = 50
    min_cells_per_sample: int = 10
    min_samples_per_class: int = 3


@dataclass(frozen=True)
class SplitConfig:
    """Group split by sample into train / validation / test."""

    val_fraction: float = 0.2
    test_fraction: float = 0.25
    seed: int = 0


@dataclass(frozen=True)
class PreprocessConfig:
    """scRNA-seq normalisation, gene selection, imputation, min-max and PCA."""

    target_sum: float = 10000.0
    n_top_genes: int = 500
    min_cells_fraction: float = 0.01
    n_components: int = 50
    seed: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """The network (hybrid Conv1D + LSTM + dense by default), its optimiser and its calibration."""

    architecture: str = "cnn_lstm"
    conv_channels: list[int] = field(default_factory=lambda: [16, 32])
    kernel_size: int = 5
    lstm_hidden: int = 32
    lstm_layers: int = 1
    bidirectional: bool = True
    dense_units: int = 32
    dropout: float = 0.2
    learning_rate: float = 0.001
    weight_decay: float = 0.0001
    batch_size: int = 128
    max_epochs: int = 60
    patience: int = 8
    seed: int = 0
    calibration: str = "platt"


@dataclass(frozen=True)
class EvaluateConfig:
    """Decision threshold on the (calibrated) persister probability, and calibration bins."""

    threshold: float = 0.5
    calibration_bins: int = 10


#: What ``train.architecture`` accepts (``model.network.ARCHITECTURES``; not imported, so config needs no torch).
NETWORK_ARCHITECTURES = ("cnn_lstm", "cnn_lstm_attention", "mlp")

ALL_MODEL_FAMILIES = (
    "cnn_lstm",
    "cnn_lstm_attention",
    "cnn_lstm_permuted",
    "mlp",
    "logistic_regression",
    "linear_svm",
    "hist_gbm",
    "marker_score",
    "celltypist",
)


@dataclass(frozen=True)
class CompareConfig:
    """The side-by-side comparison: which models, how many seeds, which splits."""

    models: list[str] = field(default_factory=lambda: list(ALL_MODEL_FAMILIES))
    n_seeds: int = 3
    cv_folds: int = 0
    logistic_c: float = 1.0
    svm_c: float = 0.1
    gbm_max_iter: int = 200
    gbm_learning_rate: float = 0.1
    marker_genes: list[str] = field(default_factory=list)
    marker_top_genes: int = 25
    celltypist_alpha: float = 0.0001


@dataclass(frozen=True)
class ExportConfig:
    """ONNX export and the onnxruntime-vs-PyTorch parity check."""

    opset: int = 17
    parity_tolerance: float = 1e-5
    parity_cells: int = 512


@dataclass(frozen=True)
class ExplainConfig:
    """Gene-level explanations (integrated gradients) of the deployed model on held-out cells.

    ``cells``: at most this many test cells, evenly spaced over the split (IG costs
    ``steps`` forward and backward passes per cell); ``steps``: Riemann steps of the
    path integral; ``top``: genes per ranking, and the k of precision@k.
    """

    cells: int = 1000
    steps: int = 32
    top: int = 50


@dataclass(frozen=True)
class RegisterConfig:
    """MLflow model registry and the promotion gate."""

    model_name: str = "oncopersistnet"
    min_f1: float = 0.6
    min_roc_auc: float = 0.7
    tolerance: float = 0.0


@dataclass(frozen=True)
class MlflowConfig:
    """Tracking store. ``tracking_uri: null`` means the project's own sqlite store."""

    experiment_name: str = "oncopersistnet"
    tracking_uri: str | None = None


@dataclass(frozen=True)
class PredictConfig:
    """Defaults for ``oncopersistnet predict``."""

    min_gene_fraction: float = 0.5
    chunk_size: int = 10000
    uncertain_band: list[float] = field(default_factory=lambda: [0.35, 0.65])


#: How a transferred network is fine-tuned (``oncopersistnet.transfer.adapt``).
FINE_TUNE_MODES = ("head", "all")


@dataclass(frozen=True)
class TransferConfig:
    """Adapt the pipeline's model to an independent labelled dataset (stage ``transfer``).

    The dataset keys mean what ``data.*`` means; the rest is the fine-tuning recipe
    (see :mod:`oncopersistnet.transfer.adapt`).
    """

    input: str | None = "data/external/gbm_panobinostat_zhao2021_lemur.h5ad"
    dataset_name: str = "gbm"
    counts_source: str = "auto"
    label_key: str = "label"
    sample_key: str = "patient"
    persister_values: list[str] = field(default_factory=lambda: ["drug_treated"])
    non_persister_values: list[str] = field(default_factory=lambda: ["untreated"])
    mode: str = "head"
    refit_scaling: bool = True
    learning_rate: float = 0.0003
    max_epochs: int = 40
    patience: int = 8
    val_fraction: float = 0.2
    test_fraction: float = 0.4
    seed: int = 0
    model_name: str | None = None
    baselines: list[str] = field(default_factory=lambda: ["cnn_lstm", "logistic_regression", "marker_score"])


#: ``cross_study.datasets[].source`` values that are not a file path.
CROSS_STUDY_SOURCES = ("pipeline", "simulate")
#: Baselines the cross-study report can refit on pooled PCA features (``evaluation.candidates``).
CROSS_STUDY_BASELINES = ("logistic_regression", "linear_svm", "hist_gbm")


@dataclass(frozen=True)
class CrossStudyDataset:
    """One labelled study of the cross-study report (stage ``cross_study``).

    ``source``: ``pipeline`` (the pipeline's validated data), ``simulate`` (the
    ``simulate`` section with the overrides below: another ``world_seed`` is another
    study) or a file under ``data/external/`` read like ``data.input`` with the
    label and sample keys below. ``note`` is printed beside the study's figures.
    """

    name: str = "study"
    source: str = "pipeline"
    world_seed: int | None = None
    effect_size: float | None = None
    n_genes: int | None = None
    n_cells: int | None = None
    seed: int | None = None
    counts_source: str = "auto"
    label_key: str = "label"
    sample_key: str = "sample"
    persister_values: list[str] = field(default_factory=lambda: ["persister"])
    non_persister_values: list[str] = field(default_factory=lambda: ["non-persister"])
    note: str = ""


def _default_cross_study_datasets() -> list[CrossStudyDataset]:
    return [
        CrossStudyDataset(name="study_A", source="pipeline"),
        CrossStudyDataset(name="study_B", source="simulate", world_seed=1, effect_size=1.6, n_genes=1500),
        CrossStudyDataset(
            name="gbm",
            source="data/external/gbm_panobinostat_zhao2021_lemur.h5ad",
            sample_key="patient",
            persister_values=["drug_treated"],
            non_persister_values=["untreated"],
            note="glioblastoma, drug_treated vs untreated: a drug-exposure contrast, NOT a persister label",
        ),
    ]


@dataclass(frozen=True)
class CrossStudyConfig:
    """Leave-one-dataset-out transfer report (stage ``cross_study``, :mod:`oncopersistnet.transfer.cross_study`)."""

    datasets: list[CrossStudyDataset] = field(default_factory=_default_cross_study_datasets)
    max_cells_per_sample: int | None = 150
    k_samples: list[int] = field(default_factory=lambda: [1, 2])
    n_seeds: int = 1
    seed: int = 0
    max_epochs: int = 40
    patience: int = 5
    fine_tune_mode: str = "all"
    fine_tune_learning_rate: float = 0.0003
    refit_scaling: bool = True
    pool_val_fraction: float = 0.25
    baseline: str = "logistic_regression"
    overlap_fractions: list[float] = field(default_factory=lambda: [1.0, 0.75, 0.5, 0.25, 0.1])
    sweep_dataset: str = "study_B"


def check_cross_study(config: CrossStudyConfig) -> None:
    """Rules of the ``cross_study`` section that one key alone cannot state."""
    names = [d.name for d in config.datasets]
    if len(names) < 2:
        raise ConfigError("cross_study.datasets: list at least 2 datasets (each is held out in turn)")
    if any(not n or not n.replace("_", "").replace("-", "").isalnum() for n in names):
        raise ConfigError(f"cross_study.datasets: names must be letters, digits, _ or -, got {names}")
    if len(set(names)) != len(names):
        raise ConfigError(f"cross_study.datasets: names must be unique, got {names}")
    for i, dataset in enumerate(config.datasets):
        where = f"cross_study.datasets[{i}] ({dataset.name})"
        file_source = dataset.source not in CROSS_STUDY_SOURCES
        if file_source and not dataset.source.strip():
            raise ConfigError(f"{where}.source: give pipeline, simulate or a file under data/external/")
        overrides = [
            k
            for k in ("world_seed", "effect_size", "n_genes", "n_cells", "seed")
            if getattr(dataset, k) is not None
        ]
        if overrides and dataset.source != "simulate":
            raise ConfigError(f"{where}: {', '.join(overrides)} only apply to source: simulate")
        if set(dataset.persister_values) & set(dataset.non_persister_values):
            raise ConfigError(f"{where}: a value is listed as both persister and non-persister")
    if config.sweep_dataset not in names:
        raise ConfigError(
            f"cross_study.sweep_dataset: {config.sweep_dataset!r} is not one of the datasets {names}"
        )
    if (
        not config.k_samples
        or any(k < 1 for k in config.k_samples)
        or len(set(config.k_samples)) != len(config.k_samples)
    ):
        raise ConfigError(
            f"cross_study.k_samples: give distinct labelled-sample counts >= 1, got {config.k_samples}"
        )
    if config.max_cells_per_sample is not None and config.max_cells_per_sample < 10:
        raise ConfigError(
            f"cross_study.max_cells_per_sample: at least 10 (or null = every cell), got {config.max_cells_per_sample}"
        )
    if not config.overlap_fractions or any(not 0.0 < f <= 1.0 for f in config.overlap_fractions):
        raise ConfigError(
            f"cross_study.overlap_fractions: each must be in (0, 1], got {config.overlap_fractions}"
        )
    if not 0.0 < config.pool_val_fraction < 1.0:
        raise ConfigError(
            f"cross_study.pool_val_fraction: must be strictly between 0 and 1, got {config.pool_val_fraction}"
        )
    if config.fine_tune_mode not in FINE_TUNE_MODES:
        raise ConfigError(f"cross_study.fine_tune_mode: must be head or all, got {config.fine_tune_mode!r}")
    if not config.fine_tune_learning_rate > 0:
        raise ConfigError(
            f"cross_study.fine_tune_learning_rate: must be positive, got {config.fine_tune_learning_rate}"
        )
    if config.baseline not in CROSS_STUDY_BASELINES:
        raise ConfigError(
            f"cross_study.baseline: must be one of {', '.join(CROSS_STUDY_BASELINES)}, got {config.baseline!r}"
        )


@dataclass(frozen=True)
class Params:
    """The whole params.yaml."""

    data: DataConfig = field(default_factory=DataConfig)
    simulate: SimulateConfig = field(default_factory=SimulateConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    explain: ExplainConfig = field(default_factory=ExplainConfig)
    register: RegisterConfig = field(default_factory=RegisterConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    cross_study: CrossStudyConfig = field(default_factory=CrossStudyConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict, as it would appear in params.yaml."""
        return dataclasses.asdict(self)

    def flat(self, sections: typing.Iterable[str] | None = None) -> dict[str, Any]:
        """``section.key -> value`` for the given sections (all by default), for MLflow params."""
        chosen = set(sections) if sections is not None else None
        out: dict[str, Any] = {}
        for section, values in self.to_dict().items():
            if chosen is not None and section not in chosen:
                continue
            for key, value in values.items():
                out[f"{section}.{key}"] = value
        return out

    def hash(self, sections: typing.Iterable[str] | None = None) -> str:
        """Short stable hash of the given sections: equal params give equal hashes."""
        payload = json.dumps(self.flat(sections), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


# Sections whose values shape the trained model: the train stage logs these.
# (validate's thresholds do not change data that passes; its report is logged instead.)
MODEL_SECTIONS = ("data", "simulate", "split", "preprocess", "train")

_POSITIVE_FIELDS = {
    "n_cells",
    "n_genes",
    "n_samples",
    "n_top_genes",
    "n_components",
    "kernel_size",
    "lstm_hidden",
    "lstm_layers",
    "dense_units",
    "batch_size",
    "max_epochs",
    "patience",
    "opset",
    "parity_cells",
    "chunk_size",
    "min_samples_per_class",
    "conv_channels",
    "target_sum",
    "learning_rate",
    "parity_tolerance",
    "calibration_bins",
    "n_seeds",
    "logistic_c",
    "svm_c",
    "gbm_max_iter",
    "gbm_learning_rate",
    "marker_top_genes",
    "celltypist_alpha",
    "cells",
    "steps",
    "top",  # explain
}
_NON_NEGATIVE_FIELDS = {
    "seed",
    "world_seed",
    "effect_size",
    "weight_decay",
    "cv_folds",
    "min_genes_per_cell",
    "min_counts_per_cell",
    "min_cells_per_sample",
}
_FRACTION_FIELDS = {
    "persister_fraction",
    "val_fraction",
    "test_fraction",
    "min_cells_fraction",
    "dropout",
    "threshold",
    "min_f1",
    "min_roc_auc",
    "min_gene_fraction",
    "tolerance",
    "cycling_fraction",
    "label_noise",
    "uncertain_band",
}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted for floats."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: unexpected value {value!r}")
    if origin is list:
        (item_type,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(item, item_type, f"{where}[{i}]") for i, item in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):  # a list of mappings, e.g. cross_study.datasets
        return _build(tp, value, where)
    raise ConfigError(f"{where}: unsupported type {_type_name(tp)}")  # pragma: no cover


def _check_range(name: str, value: Any, where: str) -> None:
    """Range rules by key name; list values are checked item by item."""
    for i, item in enumerate(value if isinstance(value, list) else [value]):
        at = f"{where}[{i}]" if isinstance(value, list) else where
        if name in _POSITIVE_FIELDS and not item > 0:
            raise ConfigError(f"{at}: must be positive, got {item!r}")
        if name in _NON_NEGATIVE_FIELDS and not item >= 0:
            raise ConfigError(f"{at}: must be zero or positive, got {item!r}")
        if name in _FRACTION_FIELDS and not 0.0 <= item <= 1.0:
            raise ConfigError(f"{at}: must be between 0 and 1, got {item!r}")


def _build(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {raw!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known keys: {', '.join(sorted(known))})")
    values = {}
    for name, value in raw.items():
        key_where = f"{where}.{name}" if where != "params.yaml" else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            values[name] = _build(tp, value, key_where)
        else:
            values[name] = _coerce(value, tp, key_where)
            if values[name] is not None:
                _check_range(name, values[name], key_where)
    return cls(**values)


def params_from_dict(raw: dict[str, Any] | None) -> Params:
    """Build and check :class:`Params` from a parsed params.yaml mapping."""
    params = _build(Params, raw or {}, "params.yaml")
    if params.split.val_fraction + params.split.test_fraction >= 1.0:
        raise ConfigError("split: val_fraction + test_fraction must leave samples for training")
    if not params.train.conv_channels:
        raise ConfigError("train.conv_channels: give at least one convolution layer")
    if params.data.orientation not in ("auto", "cells_x_genes", "genes_x_cells"):
        raise ConfigError(
            f"data.orientation: must be auto, cells_x_genes or genes_x_cells, got {params.data.orientation!r}"
        )
    if params.train.architecture not in NETWORK_ARCHITECTURES:
        raise ConfigError(
            f"train.architecture: must be cnn_lstm, cnn_lstm_attention or mlp, got {params.train.architecture!r}"
        )
    if params.train.calibration not in ("platt", "temperature", "none"):
        raise ConfigError(
            f"train.calibration: must be platt, temperature or none, got {params.train.calibration!r}"
        )
    unknown = sorted(set(params.compare.models) - set(ALL_MODEL_FAMILIES))
    if unknown or not params.compare.models:
        raise ConfigError(
            f"compare.models: {'unknown model ' + repr(unknown[0]) if unknown else 'list at least one model'} "
            f"(known: {', '.join(ALL_MODEL_FAMILIES)})"
        )
    if params.compare.cv_folds == 1:
        raise ConfigError(
            "compare.cv_folds: 0 uses the pipeline's split, k >= 2 a grouped k-fold; 1 is neither"
        )
    if params.transfer.mode not in FINE_TUNE_MODES:
        raise ConfigError(f"transfer.mode: must be head or all, got {params.transfer.mode!r}")
    if params.transfer.val_fraction + params.transfer.test_fraction >= 1.0:
        raise ConfigError("transfer: val_fraction + test_fraction must leave samples for fine-tuning")
    unknown_baselines = sorted(set(params.transfer.baselines) - set(ALL_MODEL_FAMILIES))
    if unknown_baselines:
        raise ConfigError(
            f"transfer.baselines: unknown model {unknown_baselines[0]!r} (known: {', '.join(ALL_MODEL_FAMILIES)})"
        )
    band = params.predict.uncertain_band
    if len(band) != 2 or band[0] > band[1]:
        raise ConfigError(f"predict.uncertain_band: give [low, high] with low <= high, got {band!r}")
    overlap = set(params.data.persister_values) & set(params.data.non_persister_values)
    if overlap:
        raise ConfigError(f"data: {sorted(overlap)} listed as both persister and non-persister")
    check_cross_study(params.cross_study)
    return params


def load_params(path: str | Path = DEFAULT_PARAMS_PATH) -> Params:
    """Read params.yaml into :class:`Params`; raise :class:`ConfigError` naming what is wrong."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such parameters file") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__}: {exc})") from exc
    return params_from_dict(raw)
