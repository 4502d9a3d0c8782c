"""Gene names: one namespace (GENCODE v44 symbols) for training data and every prediction input."""

from oncopersistnet.genes.harmonize import (
    GeneTable,
    HarmonizationReport,
    harmonize_adata,
    harmonize_names,
    load_gene_table,
)

__all__ = ["GeneTable", "HarmonizationReport", "harmonize_adata", "harmonize_names", "load_gene_table"]
