"""Logging for entry points (the CLI and the DVC stage scripts).

The package itself only creates loggers; configuring handlers is left to entry
points, as the logging documentation recommends for libraries.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

_NOISY_LOGGERS = ("mlflow", "alembic", "great_expectations", "urllib3", "matplotlib", "numba")


def configure_logging(level: str | int | None = None) -> None:
    """Log to stderr as ``time level name: message``; quiet chatty third-party loggers.

    ``ONCOPERSISTNET_LOG_LEVEL`` overrides the default level (INFO).
    """
    level = level or os.environ.get("ONCOPERSISTNET_LOG_LEVEL", "INFO")
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # anndata and torch.onnx warn about things users cannot act on.
    warnings.filterwarnings("ignore", category=FutureWarning, module="anndata")
