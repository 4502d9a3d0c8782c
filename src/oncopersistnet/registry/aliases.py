"""Read and move the registry's aliases: list, show, promote, rollback.

Everything goes through :class:`mlflow.MlflowClient` and aliases (MLflow's
stages are deprecated). Every move of ``champion`` is appended to the registered
model's ``champion_history`` tag (JSON), so ``rollback`` knows which version was
champion before the current one, whoever moved the alias: the register stage or
a person with ``oncopersistnet models promote``.

Moves are compare-and-set: the register stage says which champion its gate
judged against, and :func:`promote` re-reads the alias under a lock before it
moves it. Two registrations at once cannot both become champion: the second
finds the alias moved and keeps ``challenger``. The lock is a file lock beside a
local (sqlite or file) store; for a remote tracking server, which has no lock,
the re-read narrows the race to the moment between reading and setting the alias.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from oncopersistnet.errors import ModelError
from oncopersistnet.registry.uri import CHAMPION, is_model_uri, parse_model_uri
from oncopersistnet.tracking import local_folder

logger = logging.getLogger(__name__)

HISTORY_TAG = "champion_history"
_HISTORY_LIMIT = 50  # tag values are bounded; the last 50 moves are plenty to roll back
CARD_TAGS = (
    "data_hash",
    "params_hash",
    "n_genes",
    "architecture",
    "calibration",
    "test_f1",
    "test_roc_auc",
    "comparison_f1",
    "comparison_roc_auc",
    "promotion_decision",
    "promotion_reason",
)
# The card's figures the HTTP service reports for the version it serves (GET /model).
SERVED_METRIC_TAGS = (
    "test_f1",
    "test_roc_auc",
    "comparison_f1",
    "comparison_roc_auc",
    "test_brier",
    "test_ece",
)


def _client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()


def _registered(name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return _client().get_registered_model(name)
    except MlflowException as exc:
        raise ModelError(
            f"no registered model {name!r} in this MLflow store; run the pipeline (make run) first"
        ) from exc


def resolve_version(name: str, reference: str) -> Any:
    """A version by number or by alias."""
    from mlflow.exceptions import MlflowException

    _registered(name)
    client = _client()
    try:
        if str(reference).isdigit():
            return client.get_model_version(name, str(reference))
        return client.get_model_version_by_alias(name, str(reference))
    except MlflowException as exc:
        raise ModelError(
            f"{name}: no version or alias {reference!r} (see `oncopersistnet models list`)"
        ) from exc


def champion_history(name: str) -> list[dict[str, str]]:
    """Every recorded move of ``champion``, oldest first."""
    raw = _registered(name).tags.get(HISTORY_TAG)
    return json.loads(raw) if raw else []


def _record(name: str, entry: dict[str, str]) -> None:
    history = (champion_history(name) + [entry])[-_HISTORY_LIMIT:]
    _client().set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))


def current_champion_version(name: str) -> str | None:
    """Version number holding ``champion``, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return str(_client().get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


class ChampionMoved(ModelError):
    """The champion alias moved after the gate judged a candidate against it."""


# ``expected_champion`` when the caller does not care who is champion now (a move by hand).
ANY_CHAMPION = object()


@contextlib.contextmanager
def alias_lock(name: str) -> Iterator[None]:
    """Serialise alias moves of ``name`` among processes sharing a local store (a no-op for a server)."""
    from mlflow import get_tracking_uri

    folder = local_folder(get_tracking_uri())
    if folder is None or not folder.is_dir():
        yield
        return
    with open(folder / f".alias-{name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _set_alias(name: str, alias: str, version: str) -> None:
    """Point ``alias`` at ``version``, surviving the first-insert race of MLflow's alias upsert.

    MLflow's SQL store reads the alias row, then inserts it when it was missing.
    Two processes setting the same new alias at once both insert, and the
    second fails on the unique key. A lock avoids this beside a local store. A
    remote server has no lock, so this retries once: by then the row exists and
    the set is an update.
    """
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        client.set_registered_model_alias(name, alias, version)
    except MlflowException:
        try:
            client.get_model_version_by_alias(name, alias)
        except MlflowException:
            raise  # the alias still does not exist: not the race, a real failure
        client.set_registered_model_alias(name, alias, version)


def set_alias(name: str, alias: str, version: str) -> None:
    """Point a non-champion alias (``challenger``) at ``version``: under the alias lock, no history entry."""
    if alias == CHAMPION:
        raise ValueError("move champion with promote(), which records it for rollback")
    with alias_lock(name):
        _set_alias(name, alias, str(version))


def promote(
    name: str, version: str, reason: str, *, kind: str = "promote", expected_champion: Any = ANY_CHAMPION
) -> str | None:
    """Give ``version`` the champion alias; record the move; return the previous champion's version.

    ``expected_champion`` (a version string, or None for "no champion") is the
    champion a gate compared against: when the alias holds another version by
    now, nothing moves and :class:`ChampionMoved` says so.
    """
    target = resolve_version(name, version)
    client = _client()
    with alias_lock(name):
        previous = current_champion_version(name)
        if expected_champion is not ANY_CHAMPION and previous != (
            None if expected_champion is None else str(expected_champion)
        ):
            judged = "v" + str(expected_champion) if expected_champion else "unset"
            raise ChampionMoved(
                f"{name}: champion is v{previous} now, not {judged} as when v{target.version} was judged; "
                "register again to compare against the new champion"
            )
        _set_alias(name, CHAMPION, str(target.version))
        now = datetime.now(UTC).isoformat(timespec="seconds")
        _record(
            name,
            {
                "version": str(target.version),
                "previous": previous or "",
                "kind": kind,
                "at": now,
                "reason": reason,
            },
        )
    client.set_model_version_tag(name, str(target.version), "promoted_at", now)
    client.set_model_version_tag(name, str(target.version), "promotion_reason", reason)
    logger.info(
        "%s: champion %s -> v%s (%s)", name, f"v{previous}" if previous else "(none)", target.version, reason
    )
    return previous


def rollback_target(name: str) -> str:
    """The version that was champion before the current one was promoted."""
    current = current_champion_version(name)
    if current is None:
        raise ModelError(f"{name}: no champion to roll back from")
    for entry in reversed(champion_history(name)):
        if entry["version"] == current and entry["kind"] == "promote" and entry["previous"]:
            return entry["previous"]
    raise ModelError(f"{name}: champion v{current} has no recorded predecessor to roll back to")


def rollback(name: str, reason: str = "rolled back by hand") -> tuple[str, str]:
    """Move ``champion`` back to its predecessor; return ``(from_version, to_version)``."""
    current = current_champion_version(name)
    target = rollback_target(name)
    # compare-and-set: a registration that promoted meanwhile is not undone by mistake
    promote(name, target, reason, kind="rollback", expected_champion=current)
    return str(current), target


def describe_version(version: Any, aliases: list[str] | None = None) -> dict[str, Any]:
    """One version as plain data: number, aliases, dates, run, card tags."""
    return {
        "version": str(version.version),
        "aliases": sorted(aliases if aliases is not None else version.aliases or []),
        "created": datetime.fromtimestamp(version.creation_timestamp / 1000, UTC).isoformat(
            timespec="seconds"
        ),
        "run_id": version.run_id,
        **{key: version.tags.get(key, "") for key in CARD_TAGS},
    }


def list_versions(name: str) -> list[dict[str, Any]]:
    """Every version of ``name``, newest first."""
    # search results carry no aliases; the registered model maps alias -> version
    alias_map = _registered(name).aliases or {}
    versions = _client().search_model_versions(f"name = '{name}'")
    rows = [
        describe_version(v, [a for a, n in alias_map.items() if str(n) == str(v.version)]) for v in versions
    ]
    return sorted(rows, key=lambda row: -int(row["version"]))


def served_version_facts(reference: str, *, pinned: str | None = None) -> dict[str, Any]:
    """Name, version, alias and card metrics of a ``models:/`` reference ({} for a file or a run).

    ``pinned``: the ``models:/NAME/VERSION`` the model was loaded from; given, the facts are that
    version's, even if the alias has moved since the model was loaded.
    """
    if not is_model_uri(reference):
        return {}
    uri = parse_model_uri(reference)
    loaded = parse_model_uri(pinned) if pinned is not None and is_model_uri(pinned) else uri
    client = _client()
    if loaded.pinned:
        version = client.get_model_version(loaded.name, loaded.version)
    elif uri.alias is not None:
        version = client.get_model_version_by_alias(uri.name, uri.alias)
    else:
        version = client.get_model_version(uri.name, uri.version)
    metrics = {key: version.tags[key] for key in SERVED_METRIC_TAGS if key in version.tags}
    return {"name": uri.name, "version": str(version.version), "alias": uri.alias, "metrics": metrics}


def show_version(name: str, reference: str = CHAMPION) -> dict[str, Any]:
    """A version's card: summary, every tag and the description."""
    version = resolve_version(name, reference)
    return describe_version(version) | {"tags": dict(version.tags), "description": version.description or ""}
