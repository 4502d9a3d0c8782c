"""Moving the champion alias by hand: promote, rollback, list, show (a real sqlite MLflow store)."""

from __future__ import annotations

import json

import pytest

from oncopersistnet.cli import main
from oncopersistnet.errors import ModelError

NAME = "oncopersistnet-test"


@pytest.fixture()
def store(tmp_path, monkeypatch):
    """A fresh MLflow store with three versions of NAME; v1 champion, promoted by the pipeline."""
    import mlflow
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # no params.yaml here: built-in defaults
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    client.create_registered_model(NAME)
    for i in range(3):
        (tmp_path / f"m{i}").mkdir()
        version = client.create_model_version(NAME, source=(tmp_path / f"m{i}").as_uri())
        client.set_model_version_tag(NAME, version.version, "test_f1", f"0.{70 + i}")
    from oncopersistnet.registry.aliases import promote

    promote(NAME, "1", "passes thresholds; no champion yet")
    return client


def test_promote_then_rollback_restores_the_previous_champion(store):
    from oncopersistnet.registry.aliases import champion_history, current_champion_version, promote, rollback

    assert promote(NAME, "3", "better on the frozen set") == "1"
    assert current_champion_version(NAME) == "3"
    assert rollback(NAME) == ("3", "1")
    assert current_champion_version(NAME) == "1"
    kinds = [(e["version"], e["kind"]) for e in champion_history(NAME)]
    assert kinds == [("1", "promote"), ("3", "promote"), ("1", "rollback")]
    with pytest.raises(ModelError, match="no recorded predecessor"):  # v1 was the first champion
        rollback(NAME)


def test_promote_by_alias_and_unknown_versions(store):
    from oncopersistnet.registry.aliases import promote

    store.set_registered_model_alias(NAME, "challenger", "2")
    assert promote(NAME, "challenger", "by alias") == "1"
    with pytest.raises(ModelError, match="no version or alias '9'"):
        promote(NAME, "9", "nope")
    with pytest.raises(ModelError, match="no registered model 'other'"):
        promote("other", "1", "nope")


def test_models_cli_list_show_promote_rollback(store, capsys):
    assert main(["models", "list", "--name", NAME, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["version"] for r in rows] == ["3", "2", "1"] and rows[2]["aliases"] == ["champion"]
    assert main(["models", "promote", "2", "--name", NAME, "--reason", "reviewed"]) == 0
    assert "champion is now v2 (was v1)" in capsys.readouterr().out
    assert main(["models", "show", "--name", NAME, "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["version"] == "2" and card["tags"]["promotion_reason"] == "reviewed"
    assert main(["models", "rollback", "--name", NAME]) == 0
    assert "rolled back from v2 to v1" in capsys.readouterr().out
    assert main(["models", "rollback", "--name", NAME]) == 1  # one readable error line, no traceback
    assert main(["models", "list", "--name", NAME]) == 0
    table = capsys.readouterr().out
    assert "champion" in table and "0.72" in table


def test_served_facts_name_the_loaded_version_after_the_alias_moves(store):
    """A server that loaded champion v1 reports v1 (and v1's card), not the version the alias holds now."""
    from oncopersistnet.registry.aliases import promote, served_version_facts

    reference = f"models:/{NAME}@champion"
    promote(NAME, "3", "moved after the server loaded v1")
    facts = served_version_facts(reference, pinned=f"models:/{NAME}/1")
    assert facts == {"name": NAME, "version": "1", "alias": "champion", "metrics": {"test_f1": "0.70"}}
    assert served_version_facts(reference)["version"] == "3"  # no pin: the alias as it is now
