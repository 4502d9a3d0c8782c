"""Getting cells in: the simulator, readers for users' files in every format, labels, the cell record.

Import order (no cycles): ``labels`` and ``hdf5`` need nothing of this package;
``cells`` needs ``labels``; ``readers`` needs ``hdf5``; ``load`` needs ``readers`` and ``labels``.
"""

from oncopersistnet.data.cells import Cells
from oncopersistnet.data.hdf5 import read_h5ad
from oncopersistnet.data.load import label_cells, load_labelled
from oncopersistnet.data.readers import detect_format, join_metadata, read_counts
from oncopersistnet.data.simulate import simulate_cells

__all__ = [
    "Cells",
    "detect_format",
    "join_metadata",
    "label_cells",
    "load_labelled",
    "read_counts",
    "read_h5ad",
    "simulate_cells",
]
