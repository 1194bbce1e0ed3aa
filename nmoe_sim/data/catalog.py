"""The datasets a scenario can name: one entry each, with what is known before loading.

Torch-free, so the scenario schema checks names (and the shape a model expects) without
importing torch; `data/sources.py` loads an entry. A new torchvision image set is one entry.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetEntry:
    input_shape: tuple[int, int, int]  # channels, height, width
    num_classes: int
    # The torchvision.datasets class that reads it, or None for the set generated in process.
    torchvision_class: str | None
    # Where torchvision expects the files under the data root (for users copying them by hand).
    layout: str = ""


DATASETS: dict[str, DatasetEntry] = {
    "fashion_mnist": DatasetEntry(
        (1, 28, 28), 10, "FashionMNIST", "FashionMNIST/raw/ (the four unpacked IDX files)"
    ),
    "mnist": DatasetEntry((1, 28, 28), 10, "MNIST", "MNIST/raw/ (the four unpacked IDX files)"),
    "cifar10": DatasetEntry(
        (3, 32, 32), 10, "CIFAR10", "cifar-10-batches-py/ (the extracted python batches)"
    ),
    # Prototypes plus noise, for unit tests only (never for a reported number).
    "synthetic": DatasetEntry((1, 28, 28), 10, None),
}


def dataset_entry(name: str) -> DatasetEntry:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}") from None
