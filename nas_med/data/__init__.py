"""Datasets: named sources prepared into uint8 tensors in memory."""
from .catalog import dataset_names, load_dataset
from .types import Dataset, DatasetInfo, Split

__all__ = ["Dataset", "DatasetInfo", "Split", "dataset_names", "load_dataset"]
