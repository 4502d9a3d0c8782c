"""Data validation: Great Expectations on per-cell/per-gene summaries, not the raw matrix.

Validating a cells x genes matrix column by column with GX takes minutes (629 s
for 5,000 x 2,000); numpy/scipy summaries plus GX on those take about a second
and still name the offending cells. See :mod:`.summaries` and :mod:`.suite`.
"""

from oncopersistnet.validation.suite import (
    ExpectationOutcome,
    ValidationFailure,
    ValidationReport,
    build_expectations,
    validate_anndata,
)
from oncopersistnet.validation.summaries import (
    Summaries,
    cell_summary,
    class_summary,
    gene_summary,
    sample_summary,
    summarise,
)

__all__ = [
    "ExpectationOutcome",
    "Summaries",
    "ValidationFailure",
    "ValidationReport",
    "build_expectations",
    "cell_summary",
    "class_summary",
    "gene_summary",
    "sample_summary",
    "summarise",
    "validate_anndata",
]
