"""Write outputs atomically: to a temporary file beside the target, then rename.

A stage that is killed or fails halfway must leave either the previous file or
nothing, never a truncated artifact that a later stage would trust. ``os.replace``
is atomic on POSIX when source and target are on the same file system, which is
why the temporary file lives in the target's own folder.

A SIGKILL leaves no chance to remove the temporary file. Its name carries the
host and pid of its writer (``.<target>.<host>-<pid>.<random>.tmp``), so the next
write of the same target removes it once that process is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from oncopersistnet.processes import process_running


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temporary_prefix(target: Path) -> str:
    return f".{target.name}.{socket.gethostname()}-{os.getpid()}."


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove temporary files of ``target`` left by dead writers on this host (a SIGKILLed stage)."""
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.{re.escape(socket.gethostname())}-(\d+)\..*\.tmp$")
    removed = []
    if not target.parent.is_dir():
        return removed
    for candidate in target.parent.iterdir():
        match = pattern.match(candidate.name)
        if match and not process_running(int(match.group(1))):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    On any exception the temporary file is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    fd, tmp_name = tempfile.mkstemp(prefix=_temporary_prefix(target), suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():
            # mkstemp creates 0600 files; give the output the permissions a plain open() would.
            os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(target: str | os.PathLike[str], text: str) -> None:
    """Atomically write ``text`` to ``target``."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | os.PathLike[str], payload: Any) -> None:
    """Atomically write ``payload`` as indented, key-sorted JSON (stable diffs for DVC)."""
    write_text(target, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def write_h5ad(target: str | os.PathLike[str], adata: Any) -> None:
    """Atomically write an AnnData object as ``.h5ad`` (gzip-compressed sparse matrix)."""
    with atomic_path(target) as tmp:
        adata.write_h5ad(tmp, compression="gzip")
