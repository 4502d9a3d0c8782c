"""Where predictions go: CSV or Parquet written chunk by chunk, and optionally the AnnData's ``obs``.

Rows are appended as each chunk is scored, so memory does not grow with the
number of cells; the file appears under its name only when every cell is done
(the caller writes into a temporary path that is renamed at the end).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from oncopersistnet.atomic import atomic_path
from oncopersistnet.errors import InputDataError
from oncopersistnet.inference.calls import CALL_LABELS, FIELDS, Calls

if TYPE_CHECKING:
    import pandas as pd

OUTPUT_COLUMNS = ("cell_id", *FIELDS)
FORMATS = (".csv", ".parquet")
#: Where each answer goes in an AnnData's ``obs`` (``annotate`` and ``predict --obs-output``).
OBS_COLUMNS = {
    "persister_probability": "persister_probability",
    "predicted_label": "persister_label",
    "prediction_set": "persister_set",
    "out_of_distribution": "persister_ood",
    "ood_distance": "persister_ood_distance",
    "no_call_reason": "persister_no_call_reason",
}
OBS_LABEL = OBS_COLUMNS["predicted_label"]
OBS_OOD = OBS_COLUMNS["out_of_distribution"]


def check_output(path: Path) -> str:
    """The output format from the file name, or a clear error."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise InputDataError(f"{path}: output must be a .csv or .parquet file")
    return suffix


def _csv_cell(value: object) -> str:
    """A CSV field: NaN (no probability, no distance) and None (no flag) are empty, floats to 6 digits."""
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        return "" if np.isnan(value) else f"{value:.6f}"
    return str(value)


class PredictionWriter:
    """Append one row per cell (``cell_id`` and :class:`Calls`' fields) to an open CSV or Parquet file.

    A cell without a call has no probability and no distance: an empty CSV field, NaN in Parquet;
    its reason is empty when the cell was called.
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

            types = {"persister_probability": pa.float32(), "out_of_distribution": pa.bool_()}
            types["ood_distance"] = pa.float32()
            self._schema = pa.schema([(name, types.get(name, pa.string())) for name in OUTPUT_COLUMNS])
            self._parquet = pq.ParquetWriter(str(path), self._schema)

    def write(self, cell_ids: np.ndarray, calls: Calls) -> None:
        columns = {"cell_id": np.asarray(cell_ids).astype(str), **calls.columns()}
        if self.fmt == ".csv":
            self._csv.writerows([_csv_cell(v) for v in row] for row in zip(*columns.values(), strict=True))
            return
        import pyarrow as pa

        table = pa.table(
            {name: pa.array(values, type=self._schema.field(name).type) for name, values in columns.items()},
            schema=self._schema,
        )
        self._parquet.write_table(table)  # one row group per chunk

    def close(self) -> None:
        if self.fmt == ".csv":
            self._handle.close()
        else:
            self._parquet.close()


def obs_frame(calls: Calls, index: object = None) -> pd.DataFrame:
    """The answers as ``obs`` columns (:data:`OBS_COLUMNS`); the label a categorical of every label."""
    import pandas as pd

    frame = pd.DataFrame({OBS_COLUMNS[name]: values for name, values in calls.columns().items()}, index=index)
    frame[OBS_COLUMNS["predicted_label"]] = pd.Categorical(
        calls.predicted_label, categories=list(CALL_LABELS)
    )
    # unknown (NA) for a cell without a call, not False
    frame[OBS_COLUMNS["out_of_distribution"]] = pd.array(
        frame[OBS_COLUMNS["out_of_distribution"]], dtype="boolean"
    )
    return frame


def write_obs_copy(source: Path, target: Path, *, calls: Calls) -> None:
    """Copy the input ``.h5ad`` to ``target`` with every answer in ``obs`` (:data:`OBS_COLUMNS`).

    The count matrix is copied byte for byte on disk, never loaded; only ``obs``
    (one row per cell) is read and rewritten, so memory grows with cells, not genes.
    """
    import anndata as ad
    import h5py

    if target.suffix.lower() != ".h5ad":
        raise InputDataError(f"{target}: the AnnData copy must be an .h5ad file")
    if target.resolve() == source.resolve():
        raise InputDataError(f"{target}: write the annotated copy to a new file, not over the input")
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
        with h5py.File(tmp, "r+") as handle:
            obs = ad.io.read_elem(handle["obs"])
            if len(obs) != len(calls):
                raise InputDataError(f"{source}: obs has {len(obs)} rows but {len(calls)} cells were scored")
            for name, values in obs_frame(calls, index=obs.index).items():
                obs[name] = values
            del handle["obs"]
            ad.io.write_elem(handle, "obs", obs)
