"""Datasets, federated partitions and batched augmentations."""

from nmoe_sim.data.augment import augment, two_views
from nmoe_sim.data.partition import (
    SCHEMES,
    class_counts,
    client_test_indices,
    largest_remainder,
    partition_indices,
)
from nmoe_sim.data.sources import (
    DATASETS,
    DatasetUnavailable,
    ImageDataset,
    default_data_root,
    load_dataset,
    synthetic_dataset,
)

__all__ = [
    "DATASETS",
    "SCHEMES",
    "DatasetUnavailable",
    "ImageDataset",
    "augment",
    "class_counts",
    "client_test_indices",
    "default_data_root",
    "largest_remainder",
    "load_dataset",
    "partition_indices",
    "synthetic_dataset",
    "two_views",
]
