"""Is the process that left something behind still alive?

A SIGKILLed stage leaves a temporary file or a RUNNING MLflow run. Both record
who wrote them (host, pid and, where /proc exists, the process's start time, so
a reused pid is not mistaken for the writer); whoever starts next uses this to
tell an abandoned leftover from one a live process is still working on.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def process_running(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    return True


def process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' where /proc is absent or the pid is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def process_owner() -> str:
    """``host:pid:start`` of this process."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{process_start(pid)}"


def owner_alive(owner: str) -> bool:
    """Whether the process named by :func:`process_owner` still runs.

    True when it cannot be told: another host.
    """
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    pid = int(pid_text)
    if not process_running(pid):
        return False
    return not start or process_start(pid) in ("", start)
