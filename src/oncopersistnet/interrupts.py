"""Turn SIGTERM into an exception, so a stopped command cleans up like Ctrl-C.

Schedulers, ``kill`` and ``docker stop`` send SIGTERM. Python's default action
ends the process at once: no ``finally`` runs, temporary files stay, and the
MLflow run stays RUNNING. Raising :class:`Terminated` instead lets the
``atomic_path`` writers remove their temporary files and the MLflow run end as
KILLED. SIGKILL cannot be caught; :mod:`oncopersistnet.atomic` and
:func:`oncopersistnet.tracking.close_orphaned_runs` clean up after it on the
next start.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

# What a shell reports for a process that ended on SIGTERM (128 + 15).
TERMINATED_EXIT_CODE = 143


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM. A KeyboardInterrupt, so every Ctrl-C path also handles it."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"received signal {signal.Signals(signum).name}")


def raise_on_sigterm() -> None:
    """Make SIGTERM raise :class:`Terminated` in the main thread (a no-op elsewhere)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """143 for SIGTERM, 130 for Ctrl-C: what a shell would have shown."""
    return TERMINATED_EXIT_CODE if isinstance(interrupt, Terminated) else 130
