"""Corrupt and mislabelled input files: one named test per case, one place for each.

Every case asserts the project exception type and a message that names the
file and says what is wrong, then runs the real command line once
(`oncopersistnet predict --model <real ONNX> --input BAD --output out.csv`):
exit status 1, stderr exactly one ERROR line with that message, no
traceback, no output file and no temporary file.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
from helpers import run
from scipy import sparse
from test_export_inference import onnx_path  # noqa: F401  (fixture: a real exported model, for the command line)
from test_readers import _write_10x_dir, _write_10x_h5, truth  # noqa: F401  (fixture: the readers' count matrix)

from oncopersistnet.data.readers import read_counts
from oncopersistnet.errors import InputDataError

_LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d ERROR\s+oncopersistnet: (?P<message>.+)$")


def refuse(path: Path, pattern: str) -> str:
    """read_counts raises InputDataError naming ``path`` and matching ``pattern``; the message is returned."""
    with pytest.raises(InputDataError) as info:
        read_counts(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message, message
    assert re.search(pattern, message), message
    return message


def command_line_refuses(path: Path, model: Path, pattern: str) -> None:
    """`oncopersistnet predict` on ``path``.

    Status 1, one ERROR line matching ``pattern``, nothing written.
    """
    workdir = path.parent
    output = workdir / "predictions" / "out.csv"
    result = run(
        [
            "oncopersistnet",
            "predict",
            "--model",
            str(model),
            "--input",
            str(path),
            "--output",
            str(output),
            "--no-progress",
        ],
        workdir,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    match = _LOG_LINE.match(lines[0])
    assert match, lines[0]
    assert str(path) in match["message"] and re.search(pattern, match["message"]), match["message"]
    assert not output.exists()
    assert not output.parent.exists() or not any(output.parent.iterdir())  # no temporary file either


def both_refuse(path: Path, model: Path, pattern: str) -> None:
    refuse(path, pattern)
    command_line_refuses(path, model, pattern)


# --------------------------------------------------------------------------- the cases the issue names


def test_truncated_h5ad(tmp_path, truth, onnx_path):
    path = tmp_path / "cut.h5ad"
    ad.AnnData(X=sparse.csr_matrix(truth["X"])).write_h5ad(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    both_refuse(
        path,
        onnx_path,
        r"cut.h5ad: not a readable .h5ad file \(the file is truncated: [\d,]+ of [\d,]+ bytes",
    )


def test_truncated_10x_h5(tmp_path, truth, onnx_path):
    path = _write_10x_h5(tmp_path / "cut.h5", truth)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    both_refuse(path, onnx_path, r"cut.h5: not a readable HDF5 file \(the file is truncated")


def test_gz_that_is_not_gzip(tmp_path, onnx_path):
    path = tmp_path / "counts.csv.gz"
    path.write_text("cell,CD3E\nAAAC,1\n")
    both_refuse(path, onnx_path, r"counts.csv.gz: not a valid gzip file")


def test_ragged_rows(tmp_path, onnx_path):
    long_row = tmp_path / "long.csv"
    long_row.write_text("cell,CD3E,MS4A1\nAAACGTAC-1,1,2\nAAACGTAA-1,1,2,3\n")
    both_refuse(long_row, onnx_path, r"ragged table: line 3 has 4 fields, expected 3")
    short_row = tmp_path / "short.csv"  # pandas would pad this one with NaN without a word
    short_row.write_text("cell,CD3E,MS4A1\nAAACGTAC-1,1,2\nAAACGTAA-1,1\nAAACGTAG-1,0,0\n")
    refuse(short_row, r"ragged table: line 3 has 2 fields, expected 3")


def test_10x_directory_without_barcodes(tmp_path, truth, onnx_path):
    folder = _write_10x_dir(tmp_path / "tenx", truth, legacy=False, gz=True)
    (folder / "barcodes.tsv.gz").unlink()
    both_refuse(
        folder, onnx_path, r"tenx: not a complete 10x Genomics directory, missing barcodes.tsv\(.gz\)"
    )


# ---------------------------------------------------------------- more ways a file is not what it says


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("cells.h5ad", r"not a readable .h5ad file \(the file is empty \(0 bytes\)\)"),
        ("filtered_feature_bc_matrix.h5", r"not a readable HDF5 file \(the file is empty \(0 bytes\)\)"),
        ("counts.csv", r"file is empty"),
        ("counts.tsv.gz", r"file is empty"),
    ],
    ids=["h5ad", "10x-h5", "csv", "tsv-gz"],
)
def test_zero_byte_file(tmp_path, onnx_path, name, pattern):
    path = tmp_path / name
    path.write_bytes(b"")
    both_refuse(path, onnx_path, pattern)


def test_directory_where_a_file_is_expected(tmp_path, onnx_path):
    path = tmp_path / "cells.h5ad"
    path.mkdir()
    both_refuse(
        path,
        onnx_path,
        r"not a complete 10x Genomics directory.*\(cells.h5ad is a directory, not a .h5ad file\)",
    )


def test_h5ad_that_is_really_a_csv(tmp_path, onnx_path):
    path = tmp_path / "cells.h5ad"
    path.write_text("cell,CD3E,MS4A1\nAAACGTAC-1,1,2\n")
    both_refuse(
        path,
        onnx_path,
        r"not a readable .h5ad file \(not an HDF5 file: it starts with text 'cell,CD3E,MS4A1'\)",
    )


def test_binary_garbage_named_csv(tmp_path, onnx_path):
    path = tmp_path / "counts.csv"
    path.write_bytes(bytes(np.random.default_rng(0).integers(128, 256, 4096, dtype=np.uint8)))
    both_refuse(path, onnx_path, r"counts.csv: not a text file \(UnicodeDecodeError")


def test_truncated_gzip_table(tmp_path, truth, onnx_path):
    path = tmp_path / "counts.csv.gz"
    pd.DataFrame(truth["X"], index=truth["obs"], columns=truth["var"]).to_csv(path, compression="gzip")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    both_refuse(path, onnx_path, r"counts.csv.gz: compressed data is truncated or corrupt")


def _tenx_folder(folder: Path, matrix_mtx: str) -> Path:
    """A 10x folder of 3 genes x 2 cells around a hand-written matrix.mtx."""
    folder.mkdir()
    (folder / "matrix.mtx").write_text(matrix_mtx)
    (folder / "features.tsv").write_text(
        "".join(f"ENSG0000000000{i}\tG{i}\tGene Expression\n" for i in (1, 2, 3))
    )
    (folder / "barcodes.tsv").write_text("AAACGTAC-1\nAAACGTAA-1\n")
    return folder


_BANNER = "%%MatrixMarket matrix coordinate integer general\n"


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        (
            "3 2 2\n1 1 5\n7 2 1\n",
            r"matrix.mtx: not a readable Matrix Market file \(.*Row index out of bounds",
        ),
        ("3 2 4\n1 1 5\n2 2 1\n", r"matrix.mtx: not a readable Matrix Market file \(.*Truncated file"),
        ("3 2 1\n1 1 5\n2 2 1\n", r"matrix.mtx: not a readable Matrix Market file \(.*Too many lines"),
        (
            "4 2 1\n1 1 5\n",
            r"matrix.mtx is 4 x 2 but there are 3 features in features.tsv and 2 barcodes in barcodes.tsv",
        ),
    ],
    ids=[
        "entry-outside-header-dimensions",
        "fewer-entries-than-header",
        "more-entries-than-header",
        "dimensions-disagree-with-tsv",
    ],
)
def test_matrix_mtx_header_disagrees_with_entries(tmp_path, onnx_path, body, pattern):
    folder = _tenx_folder(tmp_path / "tenx", _BANNER + body)
    both_refuse(folder, onnx_path, pattern)


def test_integer_matrix_mtx_with_fractional_entries(tmp_path, onnx_path):
    """fast_matrix_market reads 2.5 in an 'integer' file as 2; the reader must refuse instead."""
    folder = _tenx_folder(tmp_path / "tenx", _BANNER + "3 2 2\n1 1 5\n2 2 2.5\n")
    both_refuse(
        folder,
        onnx_path,
        r"matrix.mtx: the header declares integer values but the entry at row 2, column 2 is 2.5",
    )


def test_empty_features_tsv(tmp_path, onnx_path):
    folder = _tenx_folder(tmp_path / "tenx", _BANNER + "3 2 1\n1 1 5\n")
    (folder / "features.tsv").write_text("")
    both_refuse(folder, onnx_path, r"features.tsv: file is empty")


def test_10x_h5_that_is_an_h5ad(tmp_path, truth, onnx_path):
    path = tmp_path / "cells.h5"
    ad.AnnData(X=sparse.csr_matrix(truth["X"])).write_h5ad(path)
    both_refuse(
        path,
        onnx_path,
        r"not a 10x Genomics .h5 file \(no 'matrix' group\); it looks like an AnnData file: name it .h5ad",
    )


def test_10x_h5_with_inconsistent_arrays(tmp_path, truth, onnx_path):
    path = _write_10x_h5(tmp_path / "bad.h5", truth)
    with h5py.File(path, "r+") as f:
        indptr = f["matrix/indptr"][()]
        indptr[-1] += 5  # points past the stored entries
        f["matrix/indptr"][...] = indptr
    both_refuse(path, onnx_path, r"bad.h5: inconsistent sparse matrix arrays")


def test_gzipped_matrix_mtx_that_is_not_gzip(tmp_path, truth, onnx_path):
    folder = _write_10x_dir(tmp_path / "tenx", truth, legacy=False, gz=True)
    (folder / "matrix.mtx.gz").write_bytes(gzip.decompress((folder / "matrix.mtx.gz").read_bytes()))
    both_refuse(folder, onnx_path, r"matrix.mtx.gz: not a valid gzip file")
