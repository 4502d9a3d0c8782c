"""What every stage entry shares: logging, telemetry off, and one readable line on a user error."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from oncopersistnet.config import Params, load_params
from oncopersistnet.errors import OncoPersistNetError
from oncopersistnet.interrupts import exit_code, raise_on_sigterm
from oncopersistnet.logging_setup import configure_logging
from oncopersistnet.paths import ProjectPaths
from oncopersistnet.tracking import disable_telemetry

logger = logging.getLogger("oncopersistnet")


def run_stage(
    name: str, stage: Callable[[Params, ProjectPaths], object], params_file: str = "params.yaml"
) -> None:
    """Run one stage from the project root.

    A user error ends it with one readable line and exit status 1; a stop signal with 130/143.
    """
    configure_logging()
    disable_telemetry()  # before anything imports mlflow
    raise_on_sigterm()  # `kill`, a scheduler or DVC stopping us: clean up as for Ctrl-C
    try:
        params = load_params(params_file)
        stage(params, ProjectPaths(Path(".")))
    except OncoPersistNetError as exc:
        logger.error("%s failed: %s", name, exc)
        sys.exit(1)
    except KeyboardInterrupt as interrupt:
        logger.error("%s stopped (%s); no partial output was kept", name, interrupt or "interrupted")
        sys.exit(exit_code(interrupt))
