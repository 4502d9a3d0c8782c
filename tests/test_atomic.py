"""Outputs are written whole or not at all."""

import os

import pytest

from oncopersistnet.atomic import atomic_path, write_json


def test_success_renames_into_place_with_normal_permissions(tmp_path):
    target = tmp_path / "sub" / "out.json"
    write_json(target, {"b": 1, "a": 2})
    assert target.read_text().startswith('{\n  "a": 2')
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_failure_leaves_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed halfway")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
