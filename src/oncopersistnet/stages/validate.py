"""Stage validate: Great Expectations on the raw data; only clean data moves on."""

from __future__ import annotations

import logging

from oncopersistnet.atomic import atomic_path, write_metrics_json
from oncopersistnet.config import Params
from oncopersistnet.data.hdf5 import read_h5ad
from oncopersistnet.errors import DataValidationError
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.validation import validate_anndata

logger = logging.getLogger(__name__)


def run(params: Params, paths: ProjectPaths) -> None:
    """Write the report always; write ``data/validated`` only when every expectation passes."""
    paths.validated.unlink(missing_ok=True)
    adata = read_h5ad(paths.raw)
    report = validate_anndata(adata, params.validate, docs_dir=paths.validation_docs)
    write_metrics_json(paths.validation_report, report.to_dict(relative_to=paths.root))
    if not report.success:
        raise DataValidationError(
            f"{paths.raw}: {report.format_failures()}\n"
            f"  details: {paths.validation_report} and {paths.validation_docs}/index.html"
        )
    with atomic_path(paths.validated) as tmp:
        tmp.write_bytes(paths.raw.read_bytes())
    logger.info("all %d expectations passed; wrote %s", report.n_expectations, paths.validated)
