"""params.yaml under random edits: it loads, or one ConfigError names the key.

Every leaf of the shipped params.yaml is replaced by values of every kind
(numbers out of range, NaN, strings, lists, mappings, null, booleans) and an
unknown key is slipped into every section. Whatever happens, the outcome is a
valid :class:`Params` or a :class:`ConfigError` whose message names the edited
key: never another exception, never a silently accepted wrong type.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oncopersistnet.config import Params, load_params, params_from_dict
from oncopersistnet.errors import ConfigError

SHIPPED = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())
PROFILE = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _leaves(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out += _leaves(value, (*prefix, key))
        else:
            out.append((*prefix, key))
    return out


LEAVES = _leaves(SHIPPED)
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.one_of(st.integers(-5, 5), st.floats(-2, 2), st.text(max_size=4)), max_size=4),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    edited = copy.deepcopy(tree)
    node = edited
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return edited


def _loaded_value(params: Params, path: tuple[str, ...]) -> Any:
    node: Any = params
    for key in path:
        node = node[key] if isinstance(node, dict) else getattr(node, key)
    return node


@PROFILE
@given(path=st.sampled_from(LEAVES), value=JUNK)
def test_any_value_for_any_key_loads_or_names_the_key(path, value):
    dotted = ".".join(path)
    try:
        params = params_from_dict(_set(SHIPPED, path, value))
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message
        # The message names the key, or (for a cross-key rule) its section and the rule.
        assert dotted in message or f"{path[0]}:" in message or path[-1] in message, message
        return
    loaded = _loaded_value(params, path)
    # Accepted: what was loaded is what was written, up to int -> float widening and list -> tuple.
    if isinstance(value, bool) or value is None or isinstance(value, str):
        assert loaded == value or (value is None and loaded is None), (dotted, value, loaded)
    elif isinstance(value, float) and math.isnan(value):
        raise AssertionError(f"{dotted}: NaN accepted silently")
    elif isinstance(value, int | float):
        assert float(loaded) == float(value), (dotted, value, loaded)
    else:
        assert list(loaded) == list(value) if isinstance(value, list) else loaded == value, (
            dotted,
            value,
            loaded,
        )


@PROFILE
@given(
    section=st.sampled_from(sorted(k for k, v in SHIPPED.items() if isinstance(v, dict))),
    key=st.text(min_size=1, max_size=10),
)
def test_an_unknown_key_in_any_section_is_named(section, key):
    if key in SHIPPED[section]:
        return
    try:
        params_from_dict(_set(SHIPPED, (section, key), 1))
    except ConfigError as exc:
        assert f"unknown key {key!r}" in str(exc) and section in str(exc)
    else:
        raise AssertionError(f"{section}.{key!r} accepted silently")


def test_a_params_file_that_is_not_a_mapping(tmp_path):
    for text, message in (
        ("- a\n- b\n", "params.yaml"),
        ("just a string\n", "params.yaml"),
        ("train: [1, 2]\n", "train"),
    ):
        path = tmp_path / "params.yaml"
        path.write_text(text)
        try:
            load_params(path)
        except ConfigError as exc:
            assert message in str(exc)
        else:
            raise AssertionError(f"{text!r} accepted")
