"""Typed configuration: params.yaml loaded once into frozen dataclasses.

params.yaml is the single source of every value: the dataclasses below declare each
key once, with its type, its meaning and its rules (field metadata read by the
loader), but no default value. Loading checks every key against them, so a typo
(``n_cell``), a wrong type (``n_cells: many``), a value out of range or a key the
file lacks stops with a message that names the key instead of silently using a
default. DVC reads the same file to decide which stages to rerun.

The only keys that may be left out are those of a ``cross_study.datasets`` entry:
an entry overrides, and what it does not say comes from the ``data`` section (how
to read and label a file) or means "no override" (see :class:`CrossStudyDataset`).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from oncopersistnet.choices import (
    ALL_MODEL_FAMILIES,
    CALIBRATION_METHODS,
    CLASS_WEIGHTS,
    CROSS_STUDY_BASELINES,
    CROSS_STUDY_SOURCES,
    FINE_TUNE_MODES,
    NETWORK_ARCHITECTURES,
    ORIENTATIONS,
    THRESHOLD_RULES,
    spoken,
)
from oncopersistnet.errors import ConfigError

__all__ = [
    "CrossStudyConfig",
    "CrossStudyDataset",
    "DataConfig",
    "LabelMapping",
    "LabelledDataConfig",
    "Params",
    "load_params",
    "params_from_dict",
    "params_with",
]

DEFAULT_PARAMS_PATH = Path("params.yaml")
#: The params.yaml of the project this package is installed from (``pip install -e .``): the values
#: a command falls back to when it runs outside a project. None when the package was installed
#: elsewhere (a wheel) and no such file is beside it.
SHIPPED_PARAMS_PATH: Path | None = (
    _candidate if (_candidate := Path(__file__).resolve().parents[2] / "params.yaml").is_file() else None
)


# --- rules: what a key's value must satisfy, declared beside the key --------------------------------


@dataclass(frozen=True)
class Rule:
    """One rule for one key. ``each``: a list value is checked item by item (the message names ``key[i]``).

    ``message`` follows ``key: `` in the error; a string gets ``, got <value>`` appended, a callable
    is given the offending value and writes the whole text.
    """

    ok: Callable[[Any], bool]
    message: str | Callable[[Any], str]
    each: bool = True

    def check(self, value: Any, where: str) -> None:
        items = list(enumerate(value)) if self.each and isinstance(value, list) else [(None, value)]
        for index, item in items:
            if not self.ok(item):
                at = where if index is None else f"{where}[{index}]"
                text = self.message(item) if callable(self.message) else f"{self.message}, got {item!r}"
                raise ConfigError(f"{at}: {text}")


POSITIVE = Rule(lambda x: x > 0, "must be positive")
NON_NEGATIVE = Rule(lambda x: x >= 0, "must be zero or positive")
FRACTION = Rule(lambda x: 0.0 <= x <= 1.0, "must be between 0 and 1")
OPEN_FRACTION = Rule(lambda x: 0.0 < x < 1.0, "must be strictly between 0 and 1")


def one_of(choices: tuple[str, ...]) -> Rule:
    """The value is one of ``choices`` (from :mod:`oncopersistnet.choices`)."""
    return Rule(lambda x: x in choices, f"must be {spoken(choices)}")


def known_models(choices: tuple[str, ...] = ALL_MODEL_FAMILIES) -> Rule:
    """Every item of a list of model families is one the project can fit."""
    unknown = lambda models: next((m for m in models if m not in choices), None)  # noqa: E731
    return Rule(
        lambda models: unknown(models) is None,
        lambda models: f"unknown model {unknown(models)!r} (known: {', '.join(choices)})",
        each=False,
    )


def not_empty(message: str) -> Rule:
    """The list holds at least one item."""
    return Rule(bool, lambda _: message, each=False)


def checked(*rules: Rule, **options: Any) -> Any:
    """A dataclass field whose value the loader checks against ``rules`` (``None`` is never checked)."""
    return field(metadata={"rules": rules}, **options)


# --- the labelled dataset: declared once, used by data, transfer and each cross_study entry -----------


@dataclass(frozen=True, kw_only=True)
class LabelMapping:
    """How to read a labelled file and which cells are persisters: the keys every labelled dataset has."""

    counts_source: str  # .h5ad only: auto, X, raw or layers/<name> (oncopersistnet.choices.COUNTS_SOURCES)
    orientation: str = checked(one_of(ORIENTATIONS))  # CSV/TSV only: which axis holds the genes
    label_key: str  # obs column with the labels
    sample_key: str  # obs column with the biological sample (the split unit)
    persister_values: list[str]
    non_persister_values: list[str]

    def at(self, path: str) -> LabelledDataConfig:
        """The file at ``path`` read with this mapping (and no metadata sidecar)."""
        mapping = {f.name: getattr(self, f.name) for f in dataclasses.fields(LabelMapping)}
        return LabelledDataConfig(input=path, metadata=None, metadata_cell_column=None, **mapping)


@dataclass(frozen=True, kw_only=True)
class LabelledDataConfig(LabelMapping):
    """A labelled dataset: a file, an optional per-cell metadata table joined to it, and its label mapping.

    ``input: null`` in the ``data`` section uses the built-in simulator.
    """

    input: str | None
    metadata: str | None  # CSV/TSV of per-cell columns joined to the file's cells
    metadata_cell_column: str | None  # its cell-name column (null: the first column)

    def labelled(self) -> LabelledDataConfig:
        """Only the dataset's keys (a section such as ``transfer`` adds its own recipe)."""
        names = [f.name for f in dataclasses.fields(LabelledDataConfig)]
        return LabelledDataConfig(**{name: getattr(self, name) for name in names})


#: The ``data`` section: where the pipeline's cells come from.
DataConfig = LabelledDataConfig


@dataclass(frozen=True, kw_only=True)
class SimulateConfig:
    """Knobs of the seeded scRNA-seq simulator (see ``oncopersistnet.data.simulate``)."""

    n_cells: int = checked(POSITIVE)
    n_genes: int = checked(POSITIVE)
    n_samples: int = checked(POSITIVE)
    persister_fraction: float = checked(FRACTION)
    effect_size: float = checked(NON_NEGATIVE)
    cycling_fraction: float = checked(FRACTION)
    label_noise: float = checked(FRACTION)
    seed: int = checked(NON_NEGATIVE)
    world_seed: int = checked(NON_NEGATIVE)


@dataclass(frozen=True, kw_only=True)
class ValidateConfig:
    """Thresholds for the Great Expectations suite."""

    min_genes_per_cell: int = checked(NON_NEGATIVE)
    min_counts_per_cell: int = checked(NON_NEGATIVE)
    min_cells_per_sample: int = checked(NON_NEGATIVE)
    min_samples_per_class: int = checked(POSITIVE)


@dataclass(frozen=True, kw_only=True)
class SplitConfig:
    """Group split by sample into train / validation / test."""

    val_fraction: float = checked(FRACTION)
    test_fraction: float = checked(FRACTION)
    seed: int = checked(NON_NEGATIVE)


@dataclass(frozen=True, kw_only=True)
class PreprocessConfig:
    """scRNA-seq normalisation, gene selection, imputation, min-max and PCA."""

    target_sum: float = checked(POSITIVE)
    n_top_genes: int = checked(POSITIVE)
    min_cells_fraction: float = checked(FRACTION)
    n_components: int = checked(POSITIVE)
    seed: int = checked(NON_NEGATIVE)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """The network (hybrid Conv1D + LSTM + dense by default), its optimiser and its calibration."""

    architecture: str = checked(one_of(NETWORK_ARCHITECTURES))
    conv_channels: list[int] = checked(POSITIVE, not_empty("give at least one convolution layer"))
    kernel_size: int = checked(POSITIVE)
    lstm_hidden: int = checked(POSITIVE)
    lstm_layers: int = checked(POSITIVE)
    bidirectional: bool
    dense_units: int = checked(POSITIVE)
    dropout: float = checked(FRACTION)
    learning_rate: float = checked(POSITIVE)
    weight_decay: float = checked(NON_NEGATIVE)
    batch_size: int = checked(POSITIVE)
    max_epochs: int = checked(POSITIVE)
    patience: int = checked(POSITIVE)
    seed: int = checked(NON_NEGATIVE)
    calibration: str = checked(one_of(CALIBRATION_METHODS))
    class_weight: str = checked(one_of(CLASS_WEIGHTS))


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig:
    """Decision threshold on the (calibrated) persister probability, and calibration bins."""

    threshold: float = checked(FRACTION)
    calibration_bins: int = checked(POSITIVE)


@dataclass(frozen=True, kw_only=True)
class CompareConfig:
    """The side-by-side comparison: which models, how many seeds, which splits."""

    models: list[str] = checked(
        not_empty(f"list at least one model (known: {', '.join(ALL_MODEL_FAMILIES)})"), known_models()
    )
    n_seeds: int = checked(POSITIVE)
    cv_folds: int = checked(
        NON_NEGATIVE,
        Rule(
            lambda k: k != 1, lambda _: "0 uses the pipeline's split, k >= 2 a grouped k-fold; 1 is neither"
        ),
    )
    logistic_c: float = checked(POSITIVE)
    svm_c: float = checked(POSITIVE)
    gbm_max_iter: int = checked(POSITIVE)
    gbm_learning_rate: float = checked(POSITIVE)
    marker_genes: list[str]
    marker_top_genes: int = checked(POSITIVE)
    celltypist_alpha: float = checked(POSITIVE)
    # The same post-hoc step for every family (evaluation/posthoc.py) and one class weighting.
    class_weight: str = checked(one_of(CLASS_WEIGHTS))
    calibration: str = checked(one_of(CALIBRATION_METHODS))
    threshold_rule: str = checked(one_of(THRESHOLD_RULES))
    # Paired bootstrap over held-out samples of every family against cnn_lstm (evaluation/paired.py).
    bootstrap_resamples: int = checked(POSITIVE)
    bootstrap_seed: int = checked(NON_NEGATIVE)
    interval_level: float = checked(OPEN_FRACTION)


@dataclass(frozen=True, kw_only=True)
class ExportConfig:
    """ONNX export and the onnxruntime-vs-PyTorch parity check."""

    opset: int = checked(POSITIVE)
    parity_tolerance: float = checked(POSITIVE)
    parity_cells: int = checked(POSITIVE)
    # OOD threshold: this quantile of the validation cells' distance to the training cells.
    ood_quantile: float = checked(OPEN_FRACTION)


@dataclass(frozen=True, kw_only=True)
class ExplainConfig:
    """Gene-level explanations (integrated gradients) of the deployed model on held-out cells.

    ``cells``: at most this many test cells, evenly spaced over the split (IG costs
    ``steps`` forward and backward passes per cell); ``steps``: Riemann steps of the
    path integral; ``top``: genes per ranking, and the k of precision@k.
    """

    cells: int = checked(POSITIVE)
    steps: int = checked(POSITIVE)
    top: int = checked(POSITIVE)


@dataclass(frozen=True, kw_only=True)
class RegisterConfig:
    """MLflow model registry and the promotion gate."""

    model_name: str
    min_f1: float = checked(FRACTION)
    min_roc_auc: float = checked(FRACTION)
    tolerance: float = checked(FRACTION)


@dataclass(frozen=True, kw_only=True)
class MlflowConfig:
    """Tracking store. ``tracking_uri: null`` means the project's own sqlite store."""

    experiment_name: str
    tracking_uri: str | None


@dataclass(frozen=True, kw_only=True)
class PredictConfig:
    """Defaults for ``oncopersistnet predict``."""

    min_gene_fraction: float = checked(FRACTION)
    chunk_size: int = checked(POSITIVE)
    # Class-conditional split-conformal sets: each class's true cells are in their set at least this often.
    coverage: float = checked(OPEN_FRACTION)
    # The summary warns when more cells than this are out of distribution (nominal: 1 - export.ood_quantile).
    ood_warn_fraction: float = checked(FRACTION)
    # No call without signal: a cell below any of these gets ``no_call`` and a reason, not a probability.
    min_counts: float = checked(NON_NEGATIVE)
    min_detected_genes: int = checked(NON_NEGATIVE)
    min_detected_selected_genes: int = checked(NON_NEGATIVE)


@dataclass(frozen=True, kw_only=True)
class TrustConfig:
    """Stage ``trust``: the deployed model's out-of-distribution rate on cells like and unlike its own.

    ``other_world_seed``: the simulator with this ``world_seed`` (another biology, drawn like the
    training data); ``external``: real cells of another study, read like ``transfer.input`` (null:
    skipped); ``max_cells``: cells drawn per dataset (seeded by ``seed``).
    """

    other_world_seed: int = checked(NON_NEGATIVE)
    external: str | None
    external_name: str
    max_cells: int = checked(POSITIVE)
    seed: int = checked(NON_NEGATIVE)


@dataclass(frozen=True, kw_only=True)
class TransferConfig(LabelledDataConfig):
    """Adapt the pipeline's model to an independent labelled dataset (stage ``transfer``).

    The dataset keys are :class:`LabelledDataConfig`'s and mean what ``data.*`` means; the
    rest is the fine-tuning recipe (see :mod:`oncopersistnet.transfer.adapt`).
    """

    dataset_name: str
    mode: str = checked(one_of(FINE_TUNE_MODES))
    refit_scaling: bool
    learning_rate: float = checked(POSITIVE)
    max_epochs: int = checked(POSITIVE)
    patience: int = checked(POSITIVE)
    val_fraction: float = checked(FRACTION)
    test_fraction: float = checked(FRACTION)
    seed: int = checked(NON_NEGATIVE)
    model_name: str | None
    baselines: list[str] = checked(known_models())


@dataclass(frozen=True, kw_only=True)
class CrossStudyDataset(LabelMapping):
    """One labelled study of the cross-study report (stage ``cross_study``): an entry of overrides.

    ``source``: ``pipeline`` (the pipeline's validated data; the default), ``simulate`` (the
    ``simulate`` section with the overrides below: another ``world_seed`` is another study)
    or a file under ``data/external/`` read like ``data.input``. The :class:`LabelMapping` keys
    an entry does not give are the ``data`` section's (the loader fills them in); a simulate
    override left out (``None``) keeps the ``simulate`` value. ``note`` is printed beside the
    study's figures.
    """

    name: str
    source: str = "pipeline"
    world_seed: int | None = checked(NON_NEGATIVE, default=None)
    effect_size: float | None = checked(NON_NEGATIVE, default=None)
    n_genes: int | None = checked(POSITIVE, default=None)
    n_cells: int | None = checked(POSITIVE, default=None)
    seed: int | None = checked(NON_NEGATIVE, default=None)
    note: str = ""


#: The simulate keys a ``cross_study.datasets`` entry may override.
SIMULATE_OVERRIDES = ("world_seed", "effect_size", "n_genes", "n_cells", "seed")


@dataclass(frozen=True, kw_only=True)
class CrossStudyConfig:
    """Leave-one-dataset-out transfer report (stage ``cross_study``, ``transfer.cross_study``)."""

    datasets: list[CrossStudyDataset]
    max_cells_per_sample: int | None = checked(Rule(lambda n: n >= 10, "at least 10 (or null = every cell)"))
    k_samples: list[int] = checked(
        Rule(
            lambda ks: bool(ks) and all(k >= 1 for k in ks) and len(set(ks)) == len(ks),
            "give distinct labelled-sample counts >= 1",
            each=False,
        )
    )
    n_seeds: int = checked(POSITIVE)
    seed: int = checked(NON_NEGATIVE)
    max_epochs: int = checked(POSITIVE)
    patience: int = checked(POSITIVE)
    fine_tune_mode: str = checked(one_of(FINE_TUNE_MODES))
    fine_tune_learning_rate: float = checked(POSITIVE)
    refit_scaling: bool
    pool_val_fraction: float = checked(OPEN_FRACTION)
    baseline: str = checked(one_of(CROSS_STUDY_BASELINES))
    overlap_fractions: list[float] = checked(
        not_empty("each must be in (0, 1], got []"), Rule(lambda f: 0.0 < f <= 1.0, "must be in (0, 1]")
    )
    sweep_dataset: str


@dataclass(frozen=True, kw_only=True)
class Params:
    """The whole params.yaml."""

    data: DataConfig
    simulate: SimulateConfig
    validate: ValidateConfig
    split: SplitConfig
    preprocess: PreprocessConfig
    train: TrainConfig
    evaluate: EvaluateConfig
    compare: CompareConfig
    export: ExportConfig
    explain: ExplainConfig
    register: RegisterConfig
    mlflow: MlflowConfig
    predict: PredictConfig
    transfer: TransferConfig
    cross_study: CrossStudyConfig
    trust: TrustConfig

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


# --- the loader -------------------------------------------------------------------------------------


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


def _required(cls: type) -> list[str]:
    """The keys a mapping for ``cls`` must give: those without a documented meaning when absent."""
    missing = dataclasses.MISSING
    return [f.name for f in dataclasses.fields(cls) if f.default is missing and f.default_factory is missing]


def _build(cls: type, raw: Any, where: str) -> Any:
    """``cls`` from the mapping ``raw``: keys known, typed, within their rules; required keys given."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields), key=str)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known keys: {', '.join(sorted(fields))})")
    values = {}
    for name, value in raw.items():
        key_where = f"{where}.{name}" if where != "params.yaml" else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            values[name] = _build(tp, value, key_where)
            continue
        values[name] = _coerce(value, tp, key_where)
        if values[name] is not None:
            for rule in fields[name].metadata.get("rules", ()):
                rule.check(values[name], key_where)
    missing = [name for name in _required(cls) if name not in raw]
    if missing:
        raise ConfigError(f"{where}: missing key {missing[0]!r} (params.yaml gives every key a value)")
    return cls(**values)


def _with_inherited_label_keys(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with each ``cross_study.datasets`` entry completed by the ``data`` section's label mapping."""
    data, cross_study = raw.get("data"), raw.get("cross_study")
    entries = cross_study.get("datasets") if isinstance(cross_study, dict) else None
    if not isinstance(entries, list):
        return raw
    if "data" not in raw:
        raise ConfigError(
            "params.yaml: missing key 'data' (cross_study.datasets take their label keys from it)"
        )
    if not isinstance(data, dict):
        return raw  # the data section's own error is the one to report
    inherited = {f.name: data[f.name] for f in dataclasses.fields(LabelMapping) if f.name in data}
    completed = [{**inherited, **entry} if isinstance(entry, dict) else entry for entry in entries]
    return {**raw, "cross_study": {**cross_study, "datasets": completed}}


def _check_label_values(config: LabelMapping, where: str) -> None:
    overlap = set(config.persister_values) & set(config.non_persister_values)
    if overlap:
        raise ConfigError(f"{where}: {sorted(overlap)} listed as both persister and non-persister")


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
            raise ConfigError(
                f"{where}.source: give {', '.join(CROSS_STUDY_SOURCES)} or a file under data/external/"
            )
        overrides = [k for k in SIMULATE_OVERRIDES if getattr(dataset, k) is not None]
        if overrides and dataset.source != "simulate":
            raise ConfigError(f"{where}: {', '.join(overrides)} only apply to source: simulate")
        _check_label_values(dataset, where)
    if config.sweep_dataset not in names:
        raise ConfigError(
            f"cross_study.sweep_dataset: {config.sweep_dataset!r} is not one of the datasets {names}"
        )


def _check_across_keys(params: Params) -> None:
    """Rules that tie two or more keys together (each key's own rules are checked as it loads)."""
    if params.split.val_fraction + params.split.test_fraction >= 1.0:
        raise ConfigError("split: val_fraction + test_fraction must leave samples for training")
    if params.transfer.val_fraction + params.transfer.test_fraction >= 1.0:
        raise ConfigError("transfer: val_fraction + test_fraction must leave samples for fine-tuning")
    _check_label_values(params.data, "data")
    _check_label_values(params.transfer, "transfer")
    check_cross_study(params.cross_study)


def params_from_dict(raw: dict[str, Any] | None) -> Params:
    """Build and check :class:`Params` from a parsed params.yaml mapping (every section, every key)."""
    if isinstance(raw, dict):
        raw = _with_inherited_label_keys(raw)
    params = _build(Params, raw, "params.yaml")
    _check_across_keys(params)
    return params


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        out[key] = (
            _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def params_with(params: Params, changes: dict[str, Any]) -> Params:
    """``params`` with ``changes`` (a nested mapping such as ``{"train": {"seed": 1}}``) applied and checked.

    Changes go through the loader, so a bad value is named as it would be in params.yaml.
    """
    return params_from_dict(_merged(params.to_dict(), changes))


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


def shipped_params() -> Params:
    """The values of the project's own params.yaml (:data:`SHIPPED_PARAMS_PATH`)."""
    if SHIPPED_PARAMS_PATH is None:
        raise ConfigError(
            "params.yaml: no such parameters file here, and none beside the installed package; "
            "run from the project, or give the parameters file (--params)"
        )
    return load_params(SHIPPED_PARAMS_PATH)


def project_params(path: str | Path = DEFAULT_PARAMS_PATH) -> Params:
    """``path`` when it exists, else the project's own params.yaml: what the CLI and the API read.

    A command run outside a project (no ./params.yaml) still finds every value in the one
    place they are written.
    """
    return load_params(path) if Path(path).exists() else shipped_params()
