"""Where predictions go: CSV or Parquet written chunk by chunk, and optionally the AnnData's ``obs``.

Rows are appended as each chunk is scored, so memory does not grow with the
number of cells; the file appears under its name only when every cell is done
(the caller writes into a temporary path that is renamed at the end).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np

from oncopersistnet.atomic import atomic_path
from oncopersistnet.errors import InputDataError

OUTPUT_COLUMNS = ("cell_id", "persister_probability", "predicted_label", "no_call_reason")
FORMATS = (".csv", ".parquet")
OBS_PROBABILITY = "persister_probability"
OBS_LABEL = "persister_label"
OBS_NO_CALL_REASON = "persister_no_call_reason"


def check_output(path: Path) -> str:
    """The output format from the file name, or a clear error."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise InputDataError(f"{path}: output must be a .csv or .parquet file")
    return suffix


class PredictionWriter:
    """Append ``(cell_id, probability, label, no_call_reason)`` rows to an open CSV or Parquet file.

    A cell without a call has no probability: an empty CSV field, NaN in Parquet; its reason
    is empty when the cell was called.
    """

    def __init__(self, path: Path, fmt: str) -> None:
        self.fmt = fmt
        if fmt == ".csv":
            self._handle = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self._csv = csv.writer(self._handle)
            self._csv.writerow(OUTPUT_COLUMNS)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            self._schema = pa.schema(
                [
                    ("cell_id", pa.string()),
                    ("persister_probability", pa.float32()),
                    ("predicted_label", pa.string()),
                    ("no_call_reason", pa.string()),
                ]
            )
            self._parquet = pq.ParquetWriter(str(path), self._schema)

    def write(
        self, cell_ids: np.ndarray, probability: np.ndarray, labels: np.ndarray, *, reasons: np.ndarray
    ) -> None:
        if self.fmt == ".csv":
            shown = ("" if np.isnan(p) else f"{p:.6f}" for p in probability)
            self._csv.writerows(zip(cell_ids, shown, labels, reasons, strict=True))
            return
        import pyarrow as pa

        table = pa.table(
            {
                "cell_id": pa.array(cell_ids.astype(str)),
                "persister_probability": pa.array(np.asarray(probability, dtype=np.float32)),
                "predicted_label": pa.array(labels.astype(str)),
                "no_call_reason": pa.array(np.asarray(reasons).astype(str)),
            },
            schema=self._schema,
        )
        self._parquet.write_table(table)  # one row group per chunk

    def close(self) -> None:
        if self.fmt == ".csv":
            self._handle.close()
        else:
            self._parquet.close()


def write_obs_copy(
    source: Path, target: Path, *, probability: np.ndarray, labels: np.ndarray, reasons: np.ndarray
) -> None:
    """Copy the input ``.h5ad`` to ``target`` with ``obs['persister_probability']`` (NaN for a cell
    without a call), ``obs['persister_label']`` and ``obs['persister_no_call_reason']``.

    The count matrix is copied byte for byte on disk, never loaded; only ``obs``
    (one row per cell) is read and rewritten, so memory grows with cells, not genes.
    """
    import anndata as ad
    import h5py
    import pandas as pd

    if target.suffix.lower() != ".h5ad":
        raise InputDataError(f"{target}: the AnnData copy must be an .h5ad file")
    if target.resolve() == source.resolve():
        raise InputDataError(f"{target}: write the annotated copy to a new file, not over the input")
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
        with h5py.File(tmp, "r+") as handle:
            obs: pd.DataFrame = ad.io.read_elem(handle["obs"])
            if len(obs) != len(probability):
                raise InputDataError(
                    f"{source}: obs has {len(obs)} rows but {len(probability)} cells were scored"
                )
            obs[OBS_PROBABILITY] = np.asarray(probability, dtype=np.float32)
            obs[OBS_LABEL] = pd.Categorical(labels)
            obs[OBS_NO_CALL_REASON] = np.asarray(reasons).astype(str)
            del handle["obs"]
            ad.io.write_elem(handle, "obs", obs)
