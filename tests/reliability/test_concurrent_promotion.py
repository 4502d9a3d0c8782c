"""Two registrations at once must not both become champion.

Real MLflow (sqlite store), real processes: each judged its candidate against
"no champion" and then tries to take the alias at the same moment.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from pathlib import Path

import pytest

from oncopersistnet.registry import CHALLENGER, CHAMPION, aliases
from oncopersistnet.registry.aliases import ChampionMoved, champion_history, current_champion_version, promote
from oncopersistnet.registry.gate import PromotionDecision
from oncopersistnet.registry.publish import apply_decision

NAME = "oncopersistnet"
RACERS = 4
ALIAS_ROUNDS = 12  # each round sets a new alias from every racer at once: MLflow's insert path every time


def _versions(uri: str, n: int) -> list[str]:
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    client.create_registered_model(NAME)
    return [str(client.create_model_version(NAME, source=f"file:///nowhere/{i}").version) for i in range(n)]


def _run_at_once(target: Callable[..., None], versions: list[str], *args: object) -> None:
    """One spawned process per version, ``target(version, barrier, *args)``, released together; each must
    exit 0."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(versions))
    racers = [context.Process(target=target, args=(version, barrier, *args)) for version in versions]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=120)
    assert [racer.exitcode for racer in racers] == [0] * len(versions)


def _race(
    version: str, barrier: multiprocessing.synchronize.Barrier, uri: str, results: multiprocessing.Queue
) -> None:
    import mlflow

    mlflow.set_tracking_uri(uri)
    decision = PromotionDecision(alias=CHAMPION, reason="passes the gate; no champion yet", candidate={})
    barrier.wait(timeout=60)
    apply_decision(NAME, version, decision, judged_against=None)
    results.put((version, decision.alias, decision.reason))


def _set_aliases(version: str, barrier: multiprocessing.synchronize.Barrier, uri: str, locked: bool) -> None:
    import mlflow

    mlflow.set_tracking_uri(uri)
    # unlocked: what a remote tracking server gets, where only the retry stands between racers
    set_alias = aliases.set_alias if locked else aliases._set_alias
    for round_ in range(ALIAS_ROUNDS):
        barrier.wait(timeout=60)
        set_alias(NAME, f"challenger-{round_}", version)


@pytest.mark.parametrize("locked", [True, False], ids=["local-store-lock", "retry-only"])
def test_simultaneous_alias_sets_do_not_fail(tmp_path: Path, store, locked: bool) -> None:
    """Losers of a champion race all set ``challenger`` at once; MLflow's upsert must not fail on its unique
    key."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    versions = _versions(uri, RACERS)
    _run_at_once(_set_aliases, versions, uri, locked)
    client = MlflowClient(tracking_uri=uri)
    for round_ in range(ALIAS_ROUNDS):
        assert str(client.get_model_version_by_alias(NAME, f"challenger-{round_}").version) in versions


def test_simultaneous_registrations_make_one_champion(tmp_path: Path, store) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    versions = _versions(uri, RACERS)
    results = multiprocessing.get_context("spawn").Queue()
    _run_at_once(_race, versions, uri, results)
    outcomes = sorted(results.get(timeout=5) for _ in versions)

    winners = [version for version, alias, _ in outcomes if alias == CHAMPION]
    assert len(winners) == 1, outcomes
    assert current_champion_version(NAME) == winners[0]
    assert [entry["version"] for entry in champion_history(NAME)] == winners
    for version, alias, reason in outcomes:
        if version != winners[0]:
            assert alias == CHALLENGER
            assert (
                f"lost a race: {NAME}: champion is v{winners[0]} now, not unset as when v{version} was judged"
                in reason
            )
    losers = {version for version, _, _ in outcomes} - set(winners)
    assert str(MlflowClient(tracking_uri=uri).get_model_version_by_alias(NAME, CHALLENGER).version) in losers


def test_promotion_rereads_the_alias_it_was_judged_against(tmp_path: Path, store) -> None:
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first, second, third = _versions(uri, 3)
    mlflow.set_tracking_uri(uri)
    promote(NAME, first, "first champion")
    promote(NAME, second, "moved by someone else meanwhile", expected_champion=first)
    with pytest.raises(ChampionMoved, match=f"champion is v{second} now, not v{first}"):
        promote(NAME, third, "judged against the first", expected_champion=first)
    assert current_champion_version(NAME) == second
    promote(NAME, third, "by hand: whoever is champion")  # a person's move does not compare
    assert current_champion_version(NAME) == third
