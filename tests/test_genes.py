"""Gene-name harmonisation against the vendored GENCODE v44 table."""

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from oncopersistnet.genes import harmonize_adata, harmonize_names, load_gene_table
from oncopersistnet.genes.harmonize import detect_namespace


def test_table_is_loaded_offline_and_knows_common_genes():
    table = load_gene_table()
    assert len(table.id_to_symbol) > 60_000
    assert table.id_to_symbol["ENSG00000141510"] == "TP53"
    assert table.canonical_symbol["AXL"] == "AXL"


def test_ids_with_versions_and_any_case_symbols_map_to_one_namespace():
    names, report = harmonize_names(["ENSG00000141510.17", "ensg00000012048", "ngfr", "Serpine1", "MyMarker"])
    assert names.tolist() == ["TP53", "BRCA1", "NGFR", "SERPINE1", "MyMarker"]
    assert (report.n_ensembl_mapped, report.n_symbol_recognised, report.n_unrecognised) == (2, 2, 1)
    assert report.unrecognised_examples == ["MyMarker"]


def test_namespace_detection():
    assert detect_namespace(["ENSG00000141510"] * 10) == "ensembl"
    assert detect_namespace(["TP53", "AXL"]) == "symbol"
    assert detect_namespace(["TP53", "ENSG00000141510"]) == "mixed"


def test_duplicates_are_summed_and_sparse_integer_counts_stay_so():
    X = sparse.csr_matrix(np.array([[1, 2, 3, 0], [0, 5, 0, 7]], dtype=np.int32))
    adata = ad.AnnData(
        X=X,
        obs=pd.DataFrame(index=["c1", "c2"]),
        var=pd.DataFrame(index=["ENSG00000141510", "AXL", "tp53", "NGFR"]),
    )
    out, report = harmonize_adata(adata)
    assert list(out.var_names) == ["TP53", "AXL", "NGFR"]
    assert sparse.issparse(out.X) and out.X.dtype == np.int32
    assert out.X.toarray().tolist() == [[4, 2, 0], [0, 5, 7]]
    assert out.var.loc["TP53", "input_names"] == "ENSG00000141510;tp53"
    assert report.n_merged == 1 and "1 duplicates summed into 3 genes" in report.describe()


def test_mouse_style_symbols_are_not_passed_off_as_human():
    names, report = harmonize_names(["Actb", "Gapdh", "Tp53", "Xist"])
    assert names.tolist() == ["Actb", "Gapdh", "Tp53", "Xist"]
    assert report.namespace == "symbol (mouse-style case)" and report.n_symbol_recognised == 0
