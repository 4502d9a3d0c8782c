"""Outputs are written whole or not at all."""

import math
import os
import time
import zipfile

import numpy as np
import pandas as pd
import pytest

from oncopersistnet.atomic import (
    FIGURE_DIGITS,
    atomic_path,
    rounded,
    write_bytes,
    write_json,
    write_metrics_json,
    write_npz,
    write_table,
)


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


def test_rounded_keeps_four_significant_digits_and_leaves_counts_alone():
    payload = {
        "auc": 0.8826129666011788,
        "p_value": 7.62939453125e-06,
        "difference": -0.0004895778013807028,
        "threshold": 1.2056871802520086,
        "whole": 512.0,
        "cells": 745,
        "passed": True,
        "name": "cnn_lstm",
        "missing": None,
        "nan": float("nan"),
        "pair": (0.12345678, np.float32(0.3333333)),
        "nested": {"brier": 0.12669446560736988, "count": np.int64(3)},
    }
    out = rounded(payload)
    assert out["auc"] == 0.8826
    assert out["p_value"] == 7.629e-06
    assert out["difference"] == -0.0004896
    assert out["threshold"] == 1.206
    assert out["whole"] == 512.0
    assert out["cells"] == 745 and type(out["cells"]) is int
    assert out["passed"] is True and out["name"] == "cnn_lstm" and out["missing"] is None
    assert math.isnan(out["nan"])
    assert out["pair"] == [0.1235, 0.3333] and type(out["pair"][1]) is float
    assert out["nested"] == {"brier": 0.1267, "count": 3} and type(out["nested"]["count"]) is int
    assert rounded(0.88255, 2) == 0.88
    assert rounded(FIGURE_DIGITS) == FIGURE_DIGITS


def test_write_metrics_json_writes_rounded_figures(tmp_path):
    target = tmp_path / "metrics.json"
    write_metrics_json(target, {"f1": 0.734020618556701, "n": 745})
    assert target.read_text() == '{\n  "f1": 0.734,\n  "n": 745\n}\n'


def test_write_table_rounds_floats_only(tmp_path):
    target = tmp_path / "table.csv"
    table = pd.DataFrame({"epoch": [1, 2], "loss": [0.9361278036284069, 0.00012345678], "model": ["a", "b"]})
    write_table(target, table)
    assert target.read_text() == "epoch,loss,model\n1,0.9361,a\n2,0.0001235,b\n"
    write_table(target, table, digits=6)
    assert target.read_text() == "epoch,loss,model\n1,0.936128,a\n2,0.000123457,b\n"


def test_write_npz_bytes_depend_only_on_the_arrays(tmp_path):
    """np.savez's zip headers differ between Python patch releases; write_npz's do not."""
    arrays = {"X": np.arange(6, dtype=np.float32).reshape(2, 3), "ids": np.array(["a", "bc"])}
    first, second = tmp_path / "one.npz", tmp_path / "sub" / "two.npz"
    write_npz(first, arrays)
    time.sleep(2.1)  # zip dates have two-second resolution: a dated member would now differ
    write_npz(second, arrays)
    assert first.read_bytes() == second.read_bytes()
    with np.load(first, allow_pickle=False) as loaded:
        assert sorted(loaded.files) == ["X", "ids"]
        np.testing.assert_array_equal(loaded["X"], arrays["X"])
        assert loaded["ids"].tolist() == ["a", "bc"]
    with zipfile.ZipFile(first) as archive:
        info = archive.getinfo("X.npy")
        assert (info.date_time, info.extract_version, info.compress_type) == (
            (1980, 1, 1, 0, 0, 0),
            20,
            zipfile.ZIP_STORED,
        )


def test_write_bytes_replaces_the_target(tmp_path):
    target = tmp_path / "blob.bin"
    target.write_bytes(b"old")
    write_bytes(target, b"\x00new")
    assert target.read_bytes() == b"\x00new"
    assert [p.name for p in tmp_path.iterdir()] == ["blob.bin"]
