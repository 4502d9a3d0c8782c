"""Getting cells in: the seeded simulator and readers for users' files in every common format."""

from oncopersistnet.data.load import label_cells, load_labelled, read_h5ad
from oncopersistnet.data.readers import detect_format, join_metadata, read_counts
from oncopersistnet.data.simulate import simulate_cells

__all__ = ["detect_format", "join_metadata", "label_cells", "load_labelled", "read_counts", "read_h5ad", "simulate_cells"]
