"""Datasets, federated partitions and batched augmentations (`data.augment`).

The names below load on first use (PEP 562), so importing `nmoe_sim.data.catalog` (the scenario
schema does) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DATASETS": "catalog",
    "SCHEMES": "partition",
    "DatasetUnavailable": "sources",
    "ImageDataset": "sources",
    "class_counts": "partition",
    "client_test_indices": "partition",
    "default_data_root": "sources",
    "largest_remainder": "partition",
    "load_dataset": "sources",
    "partition_indices": "partition",
    "synthetic_dataset": "sources",
    "two_views": "augment",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
