"""Getting cells in: the seeded simulator and readers for users' files."""

from oncopersistnet.data.load import load_labelled_h5ad, read_h5ad
from oncopersistnet.data.simulate import simulate_cells

__all__ = ["load_labelled_h5ad", "read_h5ad", "simulate_cells"]
