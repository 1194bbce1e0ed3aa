from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nmoe_sim.data import (
    DATASETS,
    DatasetUnavailable,
    ImageDataset,
    default_data_root,
    load_dataset,
    sources,
    synthetic_dataset,
)

DEBIAN_FILES = [
    sources.DEBIAN_FASHION_MNIST_DIR / f"{name}.gz"
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )
]


def _offline(monkeypatch: pytest.MonkeyPatch, cls_name: str) -> None:
    """Make torchvision's download fail as it does without network, without touching the network."""
    from torchvision import datasets

    def no_network(self: object) -> None:
        raise OSError("network is unreachable (mocked)")

    monkeypatch.setattr(getattr(datasets, cls_name), "download", no_network)


def test_datasets_listed() -> None:
    assert tuple(DATASETS) == ("fashion_mnist", "mnist", "cifar10", "synthetic")


def test_synthetic_shapes_dtypes_and_normalisation() -> None:
    ds = load_dataset("synthetic")
    assert isinstance(ds, ImageDataset)
    assert ds.name == "synthetic"
    assert ds.num_classes == 10
    assert ds.input_shape == (1, 28, 28)
    assert ds.train_x.shape == (2000, 1, 28, 28) and ds.test_x.shape == (500, 1, 28, 28)
    assert ds.train_x.dtype == torch.float32 and ds.test_x.dtype == torch.float32
    assert ds.train_y.dtype == torch.int64 and ds.test_y.dtype == torch.int64
    assert ds.train_y.min() == 0 and ds.train_y.max() == 9
    assert torch.bincount(ds.train_y).tolist() == [200] * 10
    assert abs(ds.train_x.mean().item()) < 1e-4
    assert abs(ds.train_x.std().item() - 1.0) < 1e-4
    # The test split uses the train statistics, so it is only near, not exactly, standardised.
    assert abs(ds.test_x.mean().item()) < 0.05


def test_synthetic_subset_sizes_and_determinism() -> None:
    a = load_dataset("synthetic", train_samples=300, test_samples=70, seed=4)
    b = load_dataset("synthetic", train_samples=300, test_samples=70, seed=4)
    c = load_dataset("synthetic", train_samples=300, test_samples=70, seed=5)
    assert len(a.train_y) == 300 and len(a.test_y) == 70
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.train_x, c.train_x)


def test_synthetic_other_shape() -> None:
    ds = synthetic_dataset(100, 20, num_classes=4, shape=(3, 32, 32), seed=1)
    assert ds.input_shape == (3, 32, 32)
    assert ds.train_x.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert int(ds.train_y.max()) == 3


def test_synthetic_is_learnable_by_a_linear_model() -> None:
    ds = load_dataset("synthetic", seed=0)
    torch.manual_seed(0)
    x, xt = ds.train_x.flatten(1), ds.test_x.flatten(1)
    model = torch.nn.Linear(x.shape[1], ds.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(100):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), ds.train_y).backward()
        opt.step()
    acc = (model(xt).argmax(1) == ds.test_y).float().mean().item()
    assert 0.85 < acc < 1.0  # learnable, but not solved perfectly


@pytest.mark.parametrize("field", ["train_samples", "test_samples"])
@pytest.mark.parametrize("value", [0, -3])
def test_non_positive_subset_rejected(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=field):
        load_dataset("synthetic", **{field: value})


def test_too_large_subset_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Stand-in for a real loader: 50 train / 20 test uint8 images.
    def fake_raw(name: str, root: Path) -> tuple[torch.Tensor, ...]:
        x = torch.randint(0, 256, (50, 1, 8, 8), dtype=torch.uint8)
        xt = torch.randint(0, 256, (20, 1, 8, 8), dtype=torch.uint8)
        return x, torch.arange(50) % 10, xt, torch.arange(20) % 10

    monkeypatch.setattr(sources, "_load_raw", fake_raw)
    with pytest.raises(ValueError, match="train_samples=51"):
        load_dataset("mnist", tmp_path, train_samples=51)
    with pytest.raises(ValueError, match="test_samples=21"):
        load_dataset("mnist", tmp_path, test_samples=21)
    ds = load_dataset("mnist", tmp_path, train_samples=50, test_samples=5, seed=1)
    assert ds.train_x.shape == (50, 1, 8, 8) and ds.test_x.shape == (5, 1, 8, 8)
    assert abs(ds.train_x.mean().item()) < 1e-5


def test_unknown_dataset() -> None:
    with pytest.raises(ValueError, match="cifar10"):
        load_dataset("imagenet")


def test_default_data_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NMOE_SIM_DATA", str(tmp_path))
    assert default_data_root() == tmp_path
    monkeypatch.delenv("NMOE_SIM_DATA")
    assert default_data_root() == Path.home() / ".cache" / "nmoe-sim" / "data"


def test_cifar10_offline_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _offline(monkeypatch, "CIFAR10")
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset("cifar10", tmp_path)
    message = str(info.value)
    assert "cifar10" in message and str(tmp_path) in message
    assert "internet" in message and "NMOE_SIM_DATA" in message


def test_fashion_mnist_offline_without_debian_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "no-debian-here")
    _offline(monkeypatch, "FashionMNIST")
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset("fashion_mnist", tmp_path / "root")
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert str(tmp_path / "root" / "FashionMNIST" / "raw") in message


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("root", ["missing", "missing-parents", "existing"])
def test_a_failed_download_leaves_the_file_system_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: str
) -> None:
    """torchvision makes its folders, and starts a file, before a download fails offline."""
    from urllib.error import URLError

    from torchvision.datasets import mnist

    def partial(url: str, download_root: str, filename: str, md5: str) -> None:
        (Path(download_root) / filename).write_bytes(b"the first bytes")
        raise URLError("network is unreachable (mocked)")

    monkeypatch.setattr(mnist, "download_and_extract_archive", partial)
    data = tmp_path / ("a/b/data" if root == "missing-parents" else "data")
    if root == "existing":
        data.mkdir()
        (data / "mine.txt").write_text("kept")
    before = _listing(tmp_path)
    with pytest.raises(DatasetUnavailable):
        load_dataset("mnist", data)
    assert _listing(tmp_path) == before


@pytest.mark.skipif(
    not all(f.is_file() for f in DEBIAN_FILES),
    reason="Debian package dataset-fashion-mnist not installed "
    f"(no IDX archives in {sources.DEBIAN_FASHION_MNIST_DIR})",
)
def test_fashion_mnist_from_debian_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _offline(monkeypatch, "FashionMNIST")  # must come from the local files alone
    ds = load_dataset("fashion_mnist", tmp_path)
    raw = tmp_path / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(f.stem for f in DEBIAN_FILES)
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.test_x.shape == (10000, 1, 28, 28)
    assert ds.test_y[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert torch.bincount(ds.train_y).tolist() == [6000] * 10
    assert abs(ds.train_x.mean().item()) < 1e-4 and abs(ds.train_x.std().item() - 1) < 1e-4


@pytest.mark.parametrize("name", ["synthetic", "fashion_mnist"])
def test_catalog_entry_matches_the_loaded_set(name: str) -> None:
    """What the catalog states before loading (shape, classes) is what loading gives."""
    from nmoe_sim.data.catalog import DATASETS

    try:
        ds = load_dataset(name, train_samples=50, test_samples=20)
    except DatasetUnavailable:
        pytest.skip(f"{name} is not installed here")
    entry = DATASETS[name]
    assert ds.input_shape == entry.input_shape
    assert ds.num_classes == entry.num_classes
    assert int(ds.train_y.max()) < entry.num_classes


def test_unknown_dataset_is_refused_by_the_schema() -> None:
    from nmoe_sim.config import Scenario

    with pytest.raises(ValueError, match=r"dataset\.name: unknown 'imagenet'; choose one of"):
        Scenario.model_validate({"dataset": {"name": "imagenet"}})
