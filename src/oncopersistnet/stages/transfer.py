"""Stage transfer: the pipeline's model adapted to an independent labelled dataset (``transfer.*``).

The parent is this pipeline's trained network and preprocessor (``models/``),
identified by the registry version the register stage created; the work is
:func:`oncopersistnet.transfer.workflow.run_transfer`. ``transfer.input: null``
skips the stage with a note, so a project without a second dataset still runs.
"""

from __future__ import annotations

import json
import logging
import shutil

from oncopersistnet.atomic import write_metrics_json, write_text
from oncopersistnet.config import Params
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.registry.trainable import load_trainable
from oncopersistnet.tracking import configure_mlflow
from oncopersistnet.transfer.report import transfer_markdown
from oncopersistnet.transfer.workflow import run_transfer, store_independent

logger = logging.getLogger(__name__)


def run(params: Params, paths: ProjectPaths) -> None:
    """Write ``models/transfer/``, ``metrics/transfer.json`` and ``reports/transfer.md`` (or a skip note),
    and ``models/transfer_registration.json`` (not a DVC output: registry version and run ids)."""
    if params.transfer.input is None:
        shutil.rmtree(paths.transfer_dir, ignore_errors=True)
        paths.transfer_record.unlink(missing_ok=True)
        paths.transfer_dir.mkdir(parents=True)
        write_metrics_json(paths.transfer_metrics, {"skipped": "transfer.input is null"})
        write_text(paths.transfer_report, "# Transfer\n\nSkipped: `transfer.input` is null in params.yaml.\n")
        logger.info("transfer skipped: transfer.input is null")
        return
    paths.external_file("transfer.input", params.transfer.input)
    experiment_id = configure_mlflow(params.mlflow, paths.root)  # fail early on an unusable store
    parent = load_trainable(str(paths.models))
    registry = json.loads(paths.registry.read_text())
    parent.registered_name, parent.registered_version = registry["model_name"], registry["version"]
    summary = run_transfer(
        params, parent, paths.transfer_dir, experiment_id=experiment_id, record=paths.transfer_record
    )
    # The DVC outputs hold figures only: run ids and version numbers depend on the store's history
    # (models/transfer_registration.json keeps them), not on params and data.
    write_metrics_json(paths.transfer_metrics, store_independent(summary))
    write_text(paths.transfer_report, transfer_markdown(store_independent(summary)))
