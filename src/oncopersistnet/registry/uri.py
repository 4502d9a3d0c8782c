"""Registry references: the one parser of ``models:/`` URIs, and the alias names.

A registered model is named ``models:/NAME@ALIAS`` (the version the alias points
to now) or ``models:/NAME/VERSION``. Loading, explaining, serving and transfer all
read these; one parser means they agree on what a reference names. The champion
of a model is built from its name (``register.model_name`` in params.yaml), never
spelled as a literal elsewhere, so a project that registers under another name
serves its own champion.
"""

from __future__ import annotations

from dataclasses import dataclass

from oncopersistnet.errors import ModelError

SCHEME = "models:/"
#: An MLflow run's artifact, e.g. ``runs:/<run id>/model``: resolved in the tracking store like a model URI.
RUN_SCHEME = "runs:/"
CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class ModelUri:
    """A parsed ``models:/`` reference: a name and either an alias or a version.

    ``version`` is usually a number; MLflow also accepts words there (``latest``,
    a legacy stage), which it resolves itself: such a reference is not ``pinned``.
    """

    name: str
    alias: str | None = None
    version: str | None = None

    @property
    def reference(self) -> str:
        """The alias or the version, as the registry looks it up."""
        return self.alias if self.alias is not None else str(self.version)

    @property
    def pinned(self) -> bool:
        """Whether this names one version for good (an alias may move; ``latest`` changes)."""
        return self.alias is None and str(self.version).isdigit()

    def __str__(self) -> str:
        return (
            f"{SCHEME}{self.name}@{self.alias}"
            if self.alias is not None
            else f"{SCHEME}{self.name}/{self.version}"
        )


def is_model_uri(reference: str) -> bool:
    """Whether ``reference`` is a registry URI (as opposed to a run URI or a path)."""
    return reference.startswith(SCHEME)


def is_store_uri(reference: str) -> bool:
    """Whether ``reference`` is resolved in the MLflow store (a model or a run URI), not a local path."""
    return reference.startswith((SCHEME, RUN_SCHEME))


def parse_model_uri(reference: str) -> ModelUri:
    """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` as a :class:`ModelUri`; ModelError otherwise."""
    body = reference.removeprefix(SCHEME) if is_model_uri(reference) else ""
    name, at, alias = body.partition("@")
    if at:
        parsed = ModelUri(name, alias=alias)
    else:
        name, _, version = body.partition("/")
        parsed = ModelUri(name, version=version)
    if not parsed.name or not parsed.reference:
        raise ModelError(f"{reference}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    return parsed


def champion_uri(model_name: str) -> str:
    """``models:/<model_name>@champion``: what predict, explain, serve and transfer use by default."""
    return str(ModelUri(model_name, alias=CHAMPION))


def version_uri(model_name: str, version: str) -> str:
    """``models:/<model_name>/<version>``: one registered version, whatever the aliases do later."""
    return str(ModelUri(model_name, version=str(version)))
