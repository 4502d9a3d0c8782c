"""read_counts: every input format gives the same cells x genes counts; bad inputs give one clear error."""

from __future__ import annotations

import gzip
import logging
import shutil
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
from scipy import sparse

from oncopersistnet.data.readers import detect_format, is_integer_valued, join_metadata, read_counts
from oncopersistnet.errors import InputDataError

N_CELLS, N_GENES = 30, 20
GENES = [
    "CD3E",
    "MS4A1",
    "GAPDH",
    "ACTB",
    "EPCAM",
    "KRT8",
    "VIM",
    "CD44",
    "ALDH1A1",
    "SOX2",
    "MKI67",
    "TOP2A",
    "AXL",
    "NGFR",
    "KDM5A",
    "CDH1",
    "ZEB1",
    "MYC",
    "EGFR",
    "HLA-A",
]
ENSEMBL = [f"ENSG{i:011d}" for i in range(1, N_GENES + 1)]


@pytest.fixture(scope="module")
def truth() -> dict:
    """The one small count matrix every format is written from."""
    rng = np.random.default_rng(7)
    counts = rng.poisson(0.8, size=(N_CELLS, N_GENES)).astype(np.int64)
    counts[3] = 0  # an all-zero cell is legal input
    barcodes = ["".join(rng.choice(list("ACGT"), 16)) + "-1" for _ in range(N_CELLS)]
    return {"X": counts, "obs": barcodes, "var": GENES}


def _assert_same(adata: ad.AnnData, truth: dict) -> None:
    assert sparse.isspmatrix_csr(adata.X)
    assert adata.X.dtype.kind in "iu" or adata.X.dtype == np.float32
    np.testing.assert_array_equal(adata.X.toarray(), truth["X"])
    assert list(adata.obs_names) == truth["obs"]
    assert list(adata.var_names) == truth["var"]


def _lognorm(counts: np.ndarray) -> np.ndarray:
    lib = np.maximum(counts.sum(axis=1, keepdims=True), 1)
    return np.log1p(counts / lib * 1e4).astype(np.float32)


def _gzip(path: Path) -> Path:
    out = path.with_name(path.name + ".gz")
    with open(path, "rb") as src, gzip.open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
    path.unlink()
    return out


def _write_10x_dir(folder: Path, truth: dict, legacy: bool, gz: bool, extra_features: bool = False) -> Path:
    folder.mkdir()
    genes_by_cells = sparse.coo_matrix(truth["X"].T)
    ids, names, types = list(ENSEMBL), list(truth["var"]), ["Gene Expression"] * N_GENES
    if extra_features:  # antibody-capture rows must be dropped by the reader
        genes_by_cells = sparse.vstack([genes_by_cells, sparse.coo_matrix(np.full((2, N_CELLS), 5))])
        ids += ["ADT1", "ADT2"]
        names += ["CD3_TotalSeqB", "CD19_TotalSeqB"]
        types += ["Antibody Capture"] * 2
    scipy.io.mmwrite(folder / "matrix.mtx", genes_by_cells.astype(np.int64), field="integer")
    if legacy:
        pd.DataFrame({"id": ids, "name": names}).to_csv(
            folder / "genes.tsv", sep="\t", header=False, index=False
        )
    else:
        pd.DataFrame({"id": ids, "name": names, "type": types}).to_csv(
            folder / "features.tsv", sep="\t", header=False, index=False
        )
    pd.Series(truth["obs"]).to_csv(folder / "barcodes.tsv", header=False, index=False)
    if gz:
        for path in list(folder.iterdir()):
            _gzip(path)
    return folder


def _write_10x_h5(path: Path, truth: dict) -> Path:
    counts = np.vstack([truth["X"].T, np.full((1, N_CELLS), 9)])  # + one antibody feature
    csc = sparse.csc_matrix(counts.astype(np.int32))  # genes x cells
    with h5py.File(path, "w") as f:
        m = f.create_group("matrix")
        m.create_dataset("data", data=csc.data)
        m.create_dataset("indices", data=csc.indices.astype(np.int64))
        m.create_dataset("indptr", data=csc.indptr.astype(np.int64))
        m.create_dataset("shape", data=np.array(csc.shape, dtype=np.int32))
        m.create_dataset("barcodes", data=np.array(truth["obs"], dtype="S"))
        feats = m.create_group("features")
        feats.create_dataset("id", data=np.array(ENSEMBL + ["ADT1"], dtype="S"))
        feats.create_dataset("name", data=np.array(truth["var"] + ["CD3_TotalSeqB"], dtype="S"))
        feats.create_dataset(
            "feature_type", data=np.array(["Gene Expression"] * N_GENES + ["Antibody Capture"], dtype="S")
        )
        feats.create_dataset("genome", data=np.array(["GRCh38"] * (N_GENES + 1), dtype="S"))
    return path


def _frame(truth: dict) -> pd.DataFrame:
    return pd.DataFrame(truth["X"], index=truth["obs"], columns=truth["var"])


# --------------------------------------------------------------------------- every format, same counts


def test_h5ad_counts_in_x(tmp_path, truth, caplog):
    path = tmp_path / "cells.h5ad"
    obs = pd.DataFrame({"patient": ["p1"] * N_CELLS}, index=truth["obs"])
    ad.AnnData(X=sparse.csr_matrix(truth["X"]), obs=obs, var=pd.DataFrame(index=truth["var"])).write_h5ad(
        path
    )
    with caplog.at_level(logging.INFO, logger="oncopersistnet.data.readers"):
        adata = read_counts(path)
    _assert_same(adata, truth)
    assert adata.obs["patient"].tolist() == ["p1"] * N_CELLS
    assert adata.uns["input"] == {"format": "h5ad", "path": str(path), "counts_source": "X"}
    assert any("h5ad" in r.getMessage() and "30 cells x 20 genes" in r.getMessage() for r in caplog.records)
    assert detect_format(path) == "h5ad"


def test_h5ad_dense_float_x_becomes_csr_float32(tmp_path, truth):
    path = tmp_path / "dense.h5ad"
    ad.AnnData(
        X=truth["X"].astype(np.float64),
        obs=pd.DataFrame(index=truth["obs"]),
        var=pd.DataFrame(index=truth["var"]),
    ).write_h5ad(path)
    adata = read_counts(path, counts_source="X")
    _assert_same(adata, truth)
    assert adata.X.dtype == np.float32


def test_h5ad_auto_prefers_counts_layer(tmp_path, truth):
    path = tmp_path / "layer.h5ad"
    adata = ad.AnnData(
        X=_lognorm(truth["X"]), obs=pd.DataFrame(index=truth["obs"]), var=pd.DataFrame(index=truth["var"])
    )
    adata.layers["counts"] = sparse.csr_matrix(truth["X"])
    adata.write_h5ad(path)
    out = read_counts(path)
    _assert_same(out, truth)
    assert out.uns["input"]["counts_source"] == "layers/counts"
    _assert_same(read_counts(path, counts_source="counts"), truth)  # bare layer name accepted


def test_h5ad_auto_falls_back_to_raw(tmp_path, truth):
    path = tmp_path / "raw.h5ad"
    full = ad.AnnData(
        X=sparse.csr_matrix(truth["X"].astype(np.float32)),
        obs=pd.DataFrame(index=truth["obs"]),
        var=pd.DataFrame(index=truth["var"]),
    )
    full.raw = full
    adata = full[:, :15].copy()  # X covers fewer genes than .raw, as after gene selection
    adata.X = sparse.csr_matrix(_lognorm(truth["X"])[:, :15])
    adata.write_h5ad(path)
    out = read_counts(path)
    _assert_same(out, truth)  # var_names come from .raw
    assert out.uns["input"]["counts_source"] == "raw"


def test_h5ad_backed(tmp_path, truth):
    path = tmp_path / "backed.h5ad"
    adata = ad.AnnData(
        X=sparse.csr_matrix(truth["X"]),
        obs=pd.DataFrame(index=truth["obs"]),
        var=pd.DataFrame(index=truth["var"]),
    )
    adata.write_h5ad(path)
    out = read_counts(path, backed=True)
    assert out.isbacked
    np.testing.assert_array_equal(out.X[:5].toarray(), truth["X"][:5])
    out.file.close()

    adata.layers["counts"] = adata.X.copy()
    adata.X = sparse.csr_matrix(_lognorm(truth["X"]))
    adata.write_h5ad(path)
    # counts outside X cannot stream: they are read into memory instead, correctly
    out = read_counts(path, backed=True)
    assert not out.isbacked and out.uns["input"]["counts_source"] == "layers/counts"
    np.testing.assert_array_equal(out.X.toarray(), truth["X"])
    # the usual scanpy layout: log-normalised X, integer counts in .raw; streaming falls back to memory
    del adata.layers["counts"]
    adata.raw = ad.AnnData(X=sparse.csr_matrix(truth["X"]), obs=adata.obs, var=adata.var)
    adata.write_h5ad(path)
    out = read_counts(path, backed=True)
    assert not out.isbacked and out.uns["input"]["counts_source"] == "raw"
    np.testing.assert_array_equal(out.X.toarray(), truth["X"])
    assert read_counts(path, require_integer=False).uns["input"]["counts_source"] == "raw"
    adata = ad.AnnData(
        X=adata.X, obs=adata.obs, var=adata.var, layers={"counts": sparse.csr_matrix(truth["X"])}
    )
    # a user who insists on scoring normalised X can, explicitly
    del adata.layers["counts"]
    adata.write_h5ad(path)
    with pytest.raises(InputDataError, match="look normalised"):
        read_counts(path)
    assert read_counts(path, require_integer=False).uns["input"]["counts_source"] == "X"


def test_10x_directory_gz_with_features(tmp_path, truth):
    folder = _write_10x_dir(
        tmp_path / "filtered_feature_bc_matrix", truth, legacy=False, gz=True, extra_features=True
    )
    adata = read_counts(folder)
    _assert_same(adata, truth)
    assert adata.var["gene_ids"].tolist() == ENSEMBL
    assert set(adata.var["feature_types"]) == {"Gene Expression"}
    assert adata.uns["input"]["format"] == "10x_mtx"
    _assert_same(read_counts(folder / "matrix.mtx.gz"), truth)  # the matrix file itself points at its folder


def test_10x_directory_plain_legacy_genes(tmp_path, truth):
    folder = _write_10x_dir(tmp_path / "hg19", truth, legacy=True, gz=False)
    adata = read_counts(folder)
    _assert_same(adata, truth)
    assert adata.var["gene_ids"].tolist() == ENSEMBL
    assert "feature_types" not in adata.var


def test_10x_h5_v3(tmp_path, truth):
    path = _write_10x_h5(tmp_path / "filtered_feature_bc_matrix.h5", truth)
    adata = read_counts(path)
    _assert_same(adata, truth)
    assert adata.var["gene_ids"].tolist() == ENSEMBL
    assert adata.uns["input"]["format"] == "10x_h5"


def test_10x_h5_v2(tmp_path, truth):
    path = tmp_path / "v2.h5"
    csc = sparse.csc_matrix(truth["X"].T.astype(np.int32))
    with h5py.File(path, "w") as f:
        g = f.create_group("GRCh38")
        for key, value in (
            ("data", csc.data),
            ("indices", csc.indices),
            ("indptr", csc.indptr),
            ("shape", np.array(csc.shape)),
        ):
            g.create_dataset(key, data=value)
        g.create_dataset("barcodes", data=np.array(truth["obs"], dtype="S"))
        g.create_dataset("genes", data=np.array(ENSEMBL, dtype="S"))
        g.create_dataset("gene_names", data=np.array(truth["var"], dtype="S"))
    _assert_same(read_counts(path), truth)


def test_csv_cells_by_genes(tmp_path, truth, caplog):
    path = tmp_path / "counts.csv"
    _frame(truth).to_csv(path)
    with caplog.at_level(logging.INFO, logger="oncopersistnet.data.readers"):
        adata = read_counts(path)
    _assert_same(adata, truth)
    assert adata.uns["input"]["orientation"] == "cells_x_genes"
    assert adata.uns["input"]["orientation_detected"] is True
    assert any("cells_x_genes (detected)" in r.getMessage() for r in caplog.records)


def test_tsv_gz_genes_by_cells_detected(tmp_path, truth):
    path = tmp_path / "counts.tsv.gz"
    _frame(truth).T.to_csv(path, sep="\t", compression="gzip")
    assert detect_format(path) == "tsv"
    adata = read_counts(path)
    _assert_same(adata, truth)
    assert adata.uns["input"]["orientation"] == "genes_x_cells"
    assert adata.uns["input"]["orientation_detected"] is True


def test_txt_ensembl_rows_r_style_header(tmp_path, truth):
    """R's write.table omits the corner field; Ensembl row names say rows are genes."""
    frame = pd.DataFrame(truth["X"].T, index=ENSEMBL, columns=truth["obs"])
    path = tmp_path / "counts.txt"
    lines = ["\t".join(frame.columns)] + [
        "\t".join([i, *map(str, row)]) for i, row in zip(frame.index, frame.to_numpy(), strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    adata = read_counts(path)
    np.testing.assert_array_equal(adata.X.toarray(), truth["X"])
    assert list(adata.var_names) == ENSEMBL
    assert list(adata.obs_names) == truth["obs"]


def test_explicit_orientation_when_names_do_not_tell(tmp_path, truth):
    path = tmp_path / "neutral.csv"
    pd.DataFrame(
        truth["X"].T, index=[f"g{i}" for i in range(N_GENES)], columns=[f"c{i}" for i in range(N_CELLS)]
    ).to_csv(path)
    with pytest.raises(InputDataError, match=r"cannot tell whether rows are cells or genes.*set orientation"):
        read_counts(path)
    adata = read_counts(path, orientation="genes_x_cells")
    np.testing.assert_array_equal(adata.X.toarray(), truth["X"])
    assert adata.obs_names[0] == "c0" and adata.var_names[0] == "g0"
    assert adata.uns["input"]["orientation"] == "genes_x_cells"
    assert adata.uns["input"]["orientation_detected"] is False


def test_csv_read_in_chunks(tmp_path, truth, monkeypatch):
    """Tiny blocks force many chunks; the result must not change."""
    import oncopersistnet.data.readers as readers

    monkeypatch.setattr(readers, "_TABLE_CHUNK_ELEMENTS", 50)
    monkeypatch.setattr(readers, "_TABLE_MIN_CHUNK_ROWS", 1)
    path = tmp_path / "chunked.csv"
    _frame(truth).T.to_csv(path)
    _assert_same(read_counts(path), truth)


# --------------------------------------------------------------------------- bad inputs
# Corrupt files (truncated, not gzip, ragged, incomplete 10x folder...) are in
# reliability/test_corrupt_files.py.


def test_missing_path(tmp_path):
    with pytest.raises(InputDataError, match="no such file or directory"):
        read_counts(tmp_path / "nope.h5ad")


def test_unknown_extension(tmp_path):
    path = tmp_path / "x.foo"
    path.write_text("hello")
    with pytest.raises(InputDataError, match=r"unknown format 'x.foo': expected .h5ad, .h5 \(10x\)"):
        read_counts(path)


def test_nan_value_is_not_ragged(tmp_path):
    """A literal NaN is passed on (validation rejects it), not mistaken for a missing field."""
    path = tmp_path / "nan.csv"
    path.write_text("cell,CD3E,MS4A1\nAAACGTAC-1,1,NaN\nAAACGTAA-1,1,2\n")
    adata = read_counts(path)
    assert np.isnan(adata.X.toarray()[0, 1])


def test_non_numeric_value(tmp_path):
    path = tmp_path / "text.csv"
    path.write_text("cell,CD3E,MS4A1\nAAACGTAC-1,1,2\nAAACGTAA-1,1,abc\n")
    with pytest.raises(
        InputDataError, match=r"non-numeric value 'abc' at row 'AAACGTAA-1' \(cell\), column 'MS4A1'"
    ):
        read_counts(path)


def test_h5_without_matrix_group(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("something", data=np.arange(3))
    with pytest.raises(InputDataError, match=r"not a 10x Genomics .h5 file \(no 'matrix' group\)"):
        read_counts(path)


def test_normalised_only_h5ad(tmp_path, truth):
    path = tmp_path / "norm.h5ad"
    ad.AnnData(
        X=sparse.csr_matrix(_lognorm(truth["X"])),
        obs=pd.DataFrame(index=truth["obs"]),
        var=pd.DataFrame(index=truth["var"]),
    ).write_h5ad(path)
    with pytest.raises(InputDataError) as info:
        read_counts(path)
    message = str(info.value)
    assert "look normalised" in message
    assert "X holds non-integer values (e.g. " in message and "at cell '" in message and "gene '" in message
    assert "no layers['counts'] or integer .raw found" in message
    assert "point data.counts_source (predict: --counts-source) at the raw counts" in message
    with pytest.raises(
        InputDataError, match=r"counts_source 'X' is not raw counts: X holds non-integer values"
    ):
        read_counts(path, counts_source="X")


def test_explicit_missing_layer(tmp_path, truth):
    path = tmp_path / "layer.h5ad"
    adata = ad.AnnData(X=sparse.csr_matrix(truth["X"]))
    adata.layers["counts"] = adata.X.copy()
    adata.write_h5ad(path)
    with pytest.raises(
        InputDataError, match=r"counts_source 'layers/umi' does not exist.*layers available: 'counts'"
    ):
        read_counts(path, counts_source="layers/umi")
    with pytest.raises(InputDataError, match=r"counts_source 'raw' does not exist"):
        read_counts(path, counts_source="raw")


def test_empty_matrix(tmp_path):
    path = tmp_path / "empty.h5ad"
    ad.AnnData(X=sparse.csr_matrix((0, 5), dtype=np.int64), var=pd.DataFrame(index=list("abcde"))).write_h5ad(
        path
    )
    with pytest.raises(InputDataError, match=r"the count matrix is empty \(0 cells x 5 genes\)"):
        read_counts(path)
    header_only = tmp_path / "empty.csv"
    header_only.write_text("cell,CD3E\n")
    with pytest.raises(InputDataError, match=r"no data rows"):
        read_counts(header_only)


@pytest.mark.filterwarnings("ignore:Observation names are not unique")
def test_duplicated_barcodes(tmp_path, truth):
    path = tmp_path / "dup.csv"
    frame = _frame(truth)
    frame.index = truth["obs"][:-1] + [truth["obs"][0]]
    frame.to_csv(path)
    with pytest.raises(
        InputDataError, match=rf"1 cell id\(s\) appear more than once, e.g. '{truth['obs'][0]}'"
    ):
        read_counts(path)


def test_is_integer_valued():
    assert is_integer_valued(sparse.csr_matrix(np.array([[0, 2.0], [3.0, 0]])))
    assert not is_integer_valued(sparse.csr_matrix(np.array([[0, 2.5], [3.0, 0]])))
    # NaN/inf are not evidence of normalisation: left to the count checks downstream
    assert is_integer_valued(sparse.csc_matrix(np.array([[0, np.nan], [3.0, 0]])))
    assert is_integer_valued(np.arange(6, dtype=np.int16).reshape(2, 3))
    assert not is_integer_valued(np.array([[1.0, 0.1]]))


# --------------------------------------------------------------------------- metadata


@pytest.fixture()
def counts_h5ad(tmp_path, truth) -> ad.AnnData:
    path = tmp_path / "cells.h5ad"
    ad.AnnData(
        X=sparse.csr_matrix(truth["X"]),
        obs=pd.DataFrame(index=truth["obs"]),
        var=pd.DataFrame(index=truth["var"]),
    ).write_h5ad(path)
    return read_counts(path)


def test_join_metadata(tmp_path, truth, counts_h5ad):
    meta = pd.DataFrame(
        {"barcode": truth["obs"][::-1], "sample": [f"s{i % 3}" for i in range(N_CELLS)], "n": range(N_CELLS)}
    )
    path = tmp_path / "meta.tsv.gz"
    meta.to_csv(path, sep="\t", index=False, compression="gzip")
    out = join_metadata(counts_h5ad, path)
    assert out.n_obs == N_CELLS
    expected = meta.set_index("barcode").loc[truth["obs"]]
    assert out.obs["sample"].tolist() == expected["sample"].tolist()
    assert out.obs["n"].tolist() == expected["n"].tolist()
    assert "sample" not in counts_h5ad.obs  # input untouched


def test_join_metadata_drops_cells_without_rows(tmp_path, truth, counts_h5ad, caplog):
    meta = pd.DataFrame({"label": ["persister"] * 25 + ["x"], "cell_id": truth["obs"][:25] + ["UNKNOWN-1"]})
    path = tmp_path / "meta.csv"
    meta.to_csv(path, index=False)
    with caplog.at_level(logging.WARNING, logger="oncopersistnet.data.readers"):
        out = join_metadata(counts_h5ad, path, cell_column="cell_id")
    assert list(out.obs_names) == truth["obs"][:25]
    np.testing.assert_array_equal(out.X.toarray(), truth["X"][:25])
    messages = " | ".join(r.getMessage() for r in caplog.records)
    assert "dropped 5 of 30 cells" in messages
    assert "ignored 1 metadata rows" in messages


def test_join_metadata_no_overlap(tmp_path, truth, counts_h5ad):
    path = tmp_path / "meta.csv"
    pd.DataFrame({"cell": [b[:-2] for b in truth["obs"]], "label": "p"}).to_csv(path, index=False)
    with pytest.raises(InputDataError) as info:
        join_metadata(counts_h5ad, path)
    message = str(info.value)
    assert "no cell id in column 'cell' matches" in message
    assert repr(truth["obs"][0]) in message and repr(truth["obs"][0][:-2]) in message
    assert "suffix" in message


def test_join_metadata_duplicate_ids(tmp_path, truth, counts_h5ad):
    path = tmp_path / "meta.csv"
    pd.DataFrame({"cell": truth["obs"] + truth["obs"][:2], "label": "p"}).to_csv(path, index=False)
    with pytest.raises(InputDataError, match=r"repeats 2 id\(s\)"):
        join_metadata(counts_h5ad, path)
