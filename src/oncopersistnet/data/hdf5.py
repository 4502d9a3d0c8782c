"""Open HDF5-based files (.h5ad, 10x .h5) and say in words why one does not open.

Both the format readers (:mod:`oncopersistnet.data.readers`) and the labelled-data
loader (:mod:`oncopersistnet.data.load`) open ``.h5ad`` files; this module is below
both, so neither needs the other to do it.
"""

from __future__ import annotations

import re
from pathlib import Path

import anndata as ad

from oncopersistnet.errors import InputDataError

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_TRUNCATED = re.compile(r"truncated file: eof = (\d+).*stored_eof = (\d+)")


def hdf5_problem(path: Path, exc: BaseException) -> str:
    """Why an HDF5 file (.h5ad, 10x .h5) did not open, in words rather than h5py's.

    h5py says "file signature not found" for an empty file, a CSV renamed .h5ad
    and random bytes alike, and "truncated file: eof = ..." for a cut download.
    """
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    truncated = _TRUNCATED.search(text)
    if truncated:
        have, need = (int(v) for v in truncated.groups())
        return f"the file is truncated: {have:,} of {need:,} bytes (an incomplete download or copy?)"
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
    except OSError:
        head = None
    if head == b"":
        return "the file is empty (0 bytes)"
    if head is not None and "signature not found" in text and not head.startswith(_HDF5_SIGNATURE):
        first = head.split(b"\n")[0][:40]
        try:
            return f"not an HDF5 file: it starts with text {first.decode('utf-8')!r}"
        except UnicodeDecodeError:
            return f"not an HDF5 file: it starts with bytes {first[:16]!r}"
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def read_h5ad(path: str | Path, backed: bool = False) -> ad.AnnData:
    """Open an ``.h5ad`` file or raise :class:`InputDataError` saying why it cannot be read."""
    path = Path(path)
    if not path.exists():
        raise InputDataError(f"{path}: no such file")
    if path.is_dir():
        raise InputDataError(f"{path}: is a directory, expected an .h5ad file")
    try:
        return ad.read_h5ad(path, backed="r" if backed else None)
    except Exception as exc:  # h5py/anndata raise many types for a corrupt file
        raise InputDataError(f"{path}: not a readable .h5ad file ({hdf5_problem(path, exc)})") from exc
