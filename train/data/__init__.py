"""Data sources for training: WFDB records, NumPy arrays, CSV and built-in synthetic generators."""

from edgemed.train.data.dataset import Dataset
from edgemed.train.data.load import SYNTHETIC_SOURCES, load_data

__all__ = ["SYNTHETIC_SOURCES", "Dataset", "load_data"]
