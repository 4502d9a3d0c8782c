"""The MLflow model registry: the only package that reads or moves registered models.

- :mod:`~oncopersistnet.registry.uri`: the ``models:/`` parser, :func:`champion_uri`, the alias names;
- :mod:`~oncopersistnet.registry.aliases`: compare-and-set alias moves, champion history, rollback,
  list/show;
- :mod:`~oncopersistnet.registry.resolve`: a deployable ONNX model, pinned to a version and integrity-checked;
- :mod:`~oncopersistnet.registry.trainable`: the PyTorch form (network + preprocessor), for explain
  and transfer;
- :mod:`~oncopersistnet.registry.gate`: the promotion gate;
- :mod:`~oncopersistnet.registry.publish`: log, register, describe and alias a new version;
- :mod:`~oncopersistnet.registry.card`: the model card a version carries.

Re-exported here: the reference vocabulary and the alias moves, which import
neither torch, onnx, scikit-learn nor the readers, so every command (even
``--help``, which builds its help from :func:`champion_uri`) can import this
package for free. Loading and publishing are imported from their modules:
``registry.resolve.load_model`` (onnxruntime, readers), ``registry.trainable.load_trainable``
(torch), ``registry.gate``, ``registry.publish`` and ``registry.card``.
Nothing here points MLflow at a store: the entry points (CLI, stages, server) do.
"""

from oncopersistnet.registry.aliases import (
    ChampionMoved,
    champion_history,
    current_champion_version,
    list_versions,
    promote,
    resolve_version,
    rollback,
    served_version_facts,
    set_alias,
    show_version,
)
from oncopersistnet.registry.uri import (
    CHALLENGER,
    CHAMPION,
    ModelUri,
    champion_uri,
    is_model_uri,
    is_store_uri,
    parse_model_uri,
    version_uri,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "ChampionMoved",
    "ModelUri",
    "champion_history",
    "champion_uri",
    "current_champion_version",
    "is_model_uri",
    "is_store_uri",
    "list_versions",
    "parse_model_uri",
    "promote",
    "resolve_version",
    "rollback",
    "served_version_facts",
    "set_alias",
    "show_version",
    "version_uri",
]
