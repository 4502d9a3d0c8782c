"""Write outputs atomically: to a temporary file beside the target, then rename.

A stage that is killed or fails halfway must leave either the previous file or
nothing, never a truncated artifact that a later stage would trust. ``os.replace``
is atomic on POSIX when source and target are on the same file system, which is
why the temporary file lives in the target's own folder.

Everything a stage writes whose hash lands in ``dvc.lock`` must be the same bytes on every
machine that runs the same code on the same data, or a fresh clone's ``make run`` rewrites
``dvc.lock`` and the git-tracked metrics. Hence :func:`write_metrics_json` and
:func:`write_table` (figures rounded to :data:`FIGURE_DIGITS` significant digits) and
:func:`write_npz` / :func:`write_bytes` (archives with no name, date or zip64 header that
depends on the writer).

A SIGKILL leaves no chance to remove the temporary file. Its name carries the
host and pid of its writer (``.<target>.<host>-<pid>.<random>.tmp``), so the next
write of the same target removes it once that process is gone.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import numbers
import os
import re
import socket
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from oncopersistnet.processes import process_running

#: Significant digits of every figure in a git-tracked metrics, plots or report file.
#: Why 4: the figures come from at most a few thousand cells in a handful of samples, so their
#: sampling error is 1e-2 or more (spreads over seeds and folds are 0.01-0.05) and the README shows
#: three decimals; a fourth digit is the most they can support. The digits past it are float noise
#: that differs between machines (thread counts, BLAS kernels) at about 1e-7, three orders below
#: the last digit kept, so a value changes only when it lies within that noise of a rounding edge.
FIGURE_DIGITS = 4

#: Date of every member of an archive :func:`write_npz` writes (the earliest a zip can hold).
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


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


def rounded(payload: Any, digits: int = FIGURE_DIGITS) -> Any:
    """``payload`` with every non-integral number rounded to ``digits`` significant digits.

    Significant digits, not decimals: a p-value of 7.6e-06 or a parity error of 2.1e-06 keeps its
    size, where four decimals would make it 0. Integers and booleans are counts and flags, kept
    exactly; NaN and infinities pass through; mappings and sequences are rounded inside (tuples
    become lists, as JSON writes them). NumPy scalars are plain numbers here.
    """
    if isinstance(payload, Mapping):
        return {key: rounded(value, digits) for key, value in payload.items()}
    if isinstance(payload, (list, tuple)):
        return [rounded(value, digits) for value in payload]
    if isinstance(payload, numbers.Integral):
        return payload if isinstance(payload, (bool, int)) else int(payload)
    if isinstance(payload, numbers.Real):
        value = float(payload)
        return float(f"{value:.{digits}g}") if math.isfinite(value) else value
    return payload


def write_metrics_json(target: str | os.PathLike[str], payload: Any) -> None:
    """Atomically write a git-tracked metrics file: :func:`write_json` of :func:`rounded` ``payload``.

    Why: these files are in git and their hashes in ``dvc.lock``; unrounded, float noise in the
    seventh digit made a fresh clone's ``make run`` rewrite them (see :data:`FIGURE_DIGITS`).
    """
    write_json(target, rounded(payload))


def write_table(
    target: str | os.PathLike[str], table: Any, *, index: bool = False, digits: int = FIGURE_DIGITS
) -> None:
    """Atomically write a pandas table as CSV with floats at ``digits`` significant digits.

    The one writer of the CSVs under ``metrics/``, ``plots/`` and ``reports/`` whose hashes are in
    ``dvc.lock``, for the reason :func:`write_metrics_json` gives. A table that a later stage reads
    back to decide something may keep more digits than :data:`FIGURE_DIGITS` (the caller says why).
    """
    with atomic_path(target) as tmp:
        table.to_csv(tmp, index=index, float_format=f"%.{digits}g")


def write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """Atomically write ``data`` to ``target``.

    For serialisers that name their archive after the file they write: ``torch.save`` to a path
    names every member after it (here, the random temporary name), to a buffer ``archive/``.
    """
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_npz(target: str | os.PathLike[str], arrays: Mapping[str, Any]) -> None:
    """Atomically write ``arrays`` as an uncompressed ``.npz`` whose bytes depend only on the arrays.

    Why not ``np.savez``: its zip headers depend on the Python patch release (3.11.7's ``zipfile``
    forces zip64 headers, version 45; 3.11.2's does not, version 20), so equal arrays hashed
    differently in ``dvc.lock`` on two machines. Here every member is stored, dated 1980-01-01, with
    zip64 only past 4 GiB. ``np.load`` reads it like any ``.npz``; no array may need pickle.
    """
    with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
            member = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            member.external_attr = 0o600 << 16
            archive.writestr(member, buffer.getvalue())


def write_h5ad(target: str | os.PathLike[str], adata: Any) -> None:
    """Atomically write an AnnData object as ``.h5ad`` (gzip-compressed sparse matrix)."""
    with atomic_path(target) as tmp:
        adata.write_h5ad(tmp, compression="gzip")
