"""Write outputs atomically: to a temporary file beside the target, then rename.

A stage that is killed or fails halfway must leave either the previous file or
nothing, never a truncated artifact that a later stage would trust. ``os.replace``
is atomic on POSIX when source and target are on the same file system, which is
why the temporary file lives in the target's own folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    On any exception the temporary file is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
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
