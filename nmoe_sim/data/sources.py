"""Dataset sources: real image sets through torchvision, and a synthetic set for unit tests.

Every loader returns whole-split tensors (no per-image Python work), normalised per channel with the
statistics of the full training split, so a seeded subset sees exactly the pixel values the full set
would have.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nmoe_sim.data.catalog import DatasetEntry, dataset_entry

# Where Debian's `dataset-fashion-mnist` package installs the four official IDX archives.
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

_SYNTHETIC_TRAIN_DEFAULT = 2000
_SYNTHETIC_TEST_DEFAULT = 500


@dataclass(frozen=True)
class ImageDataset:
    """Train and test splits of an image classification set, held as whole tensors."""

    name: str
    # Images are float32 [N, C, H, W], normalised per channel with the train-set mean/std.
    train_x: torch.Tensor
    train_y: torch.Tensor  # int64 [N]
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int

    def __post_init__(self) -> None:
        splits = (("train", self.train_x, self.train_y), ("test", self.test_x, self.test_y))
        for split, x, y in splits:
            if x.dim() != 4 or y.dim() != 1 or x.shape[0] != y.shape[0]:
                raise ValueError(
                    f"{self.name}: {split} split must be x [N, C, H, W] and y [N], "
                    f"got {tuple(x.shape)} and {tuple(y.shape)}"
                )
        if self.train_x.shape[1:] != self.test_x.shape[1:]:
            raise ValueError(f"{self.name}: train and test images differ in shape")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_x.shape[1:]
        return (int(c), int(h), int(w))


class DatasetUnavailable(RuntimeError):
    """The dataset is neither on disk nor downloadable; the message says how to obtain it."""


def default_data_root() -> Path:
    """`$NMOE_SIM_DATA` if set, else `~/.cache/nmoe-sim/data`."""
    env = os.environ.get("NMOE_SIM_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "nmoe-sim" / "data"


def load_dataset(
    name: str,
    root: Path | None = None,
    *,
    train_samples: int | None = None,
    test_samples: int | None = None,
    seed: int = 0,
) -> ImageDataset:
    """Load `name` (an entry of `catalog.DATASETS`) from `root` (default: `default_data_root()`).

    `train_samples` / `test_samples` pick seeded random subsets (drawn from `seed`) for speed; the
    normalisation still uses the full training split's statistics. Raises `DatasetUnavailable` when
    a real set is neither under `root` nor downloadable.
    """
    entry = dataset_entry(name)
    _check_count("train_samples", train_samples)
    _check_count("test_samples", test_samples)
    if entry.torchvision_class is None:
        return synthetic_dataset(
            train_samples if train_samples is not None else _SYNTHETIC_TRAIN_DEFAULT,
            test_samples if test_samples is not None else _SYNTHETIC_TEST_DEFAULT,
            num_classes=entry.num_classes,
            shape=entry.input_shape,
            seed=seed,
        )

    root = Path(root).expanduser() if root is not None else default_data_root()
    with _left_as_found(root):
        train_x, train_y, test_x, test_y = _load_raw(name, root)

    # Independent streams, so the test subset does not depend on whether the train set is subset.
    train_rng, test_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    train_idx = _subset(train_rng, len(train_y), train_samples, "train_samples")
    test_idx = _subset(test_rng, len(test_y), test_samples, "test_samples")

    mean, std = _channel_stats(train_x)
    if train_idx is not None:
        train_x, train_y = train_x[train_idx], train_y[train_idx]
    if test_idx is not None:
        test_x, test_y = test_x[test_idx], test_y[test_idx]
    return ImageDataset(
        name=name,
        train_x=_to_float(train_x, mean, std),
        train_y=train_y,
        test_x=_to_float(test_x, mean, std),
        test_y=test_y,
        num_classes=entry.num_classes,
    )


def synthetic_dataset(
    train_samples: int = _SYNTHETIC_TRAIN_DEFAULT,
    test_samples: int = _SYNTHETIC_TEST_DEFAULT,
    *,
    num_classes: int = 10,
    shape: tuple[int, int, int] = (1, 28, 28),
    noise_std: float = 1.0,
    seed: int = 0,
) -> ImageDataset:
    """A synthetic image set, **for unit tests only** (never for a reported number).

    Each class is a fixed smooth random prototype image; a sample is its class prototype plus i.i.d.
    Gaussian pixel noise. The prototypes are scaled so that a linear model separates the classes
    well, yet the per-pixel signal sits below the noise, so a model has to learn. Classes are
    balanced; everything is drawn from `seed`.
    """
    _check_count("train_samples", train_samples)
    _check_count("test_samples", test_samples)
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    if noise_std <= 0:
        raise ValueError(f"noise_std must be positive, got {noise_std}")
    c, h, w = shape
    proto_rng, train_rng, test_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )

    # Smooth prototypes (coarse noise upsampled) so convolutional models have spatial structure.
    coarse = torch.from_numpy(
        proto_rng.standard_normal((num_classes, c, max(h // 4, 1), max(w // 4, 1)))
    ).float()
    protos = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    protos = protos - protos.mean(dim=0, keepdim=True)  # only class differences carry signal
    protos = protos / protos.pow(2).mean().sqrt()
    # At 1x28x28, amp 0.15 puts prototypes ~6 noise stds apart (Bayes accuracy ~99 %) while each
    # pixel's signal is far below the noise: a linear model on 2000 samples reaches ~95 % test
    # accuracy, not 100 %, so learning is visible and methods can still differ.
    protos = protos * (0.15 * noise_std)
    background = torch.from_numpy(proto_rng.uniform(0.0, 1.0, (1, c, 1, 1))).float()

    def draw(rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = rng.permutation(np.arange(n) % num_classes)
        noise = torch.from_numpy(rng.standard_normal((n, c, h, w), dtype=np.float32))
        y = torch.from_numpy(labels).long()
        # background + protos[y] + noise_std * noise, in place: the same float operations in
        # the same order, with two images per sample in memory at the peak instead of four.
        x = protos[y]
        x.add_(background).add_(noise.mul_(noise_std))
        return x, y

    train_x, train_y = draw(train_rng, train_samples)
    test_x, test_y = draw(test_rng, test_samples)
    mean, std = _channel_stats(train_x)
    for x in (train_x, test_x):
        x.sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1))
    return ImageDataset(
        name="synthetic",
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=num_classes,
    )


# --- helpers ------------------------------------------------------------------------------------


def _check_count(field: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise ValueError(f"{field} must be a positive integer, got {value!r}")


def _subset(
    rng: np.random.Generator, available: int, wanted: int | None, field: str
) -> torch.Tensor | None:
    if wanted is None:
        return None
    if wanted > available:
        raise ValueError(f"{field}={wanted} exceeds the {available} samples available")
    # Sorted so a subset keeps the source order (deterministic and cache-friendly).
    return torch.from_numpy(np.sort(rng.choice(available, size=wanted, replace=False)))


def _channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of x [N, C, H, W]; uint8 pixels are read as value / 255."""
    if x.dtype == torch.uint8:
        # A 256-bin histogram per channel gives exact moments without a float copy of the whole set
        # (which would be ~1.2 GB in float64 for CIFAR-10).
        values = torch.arange(256, dtype=torch.float64) / 255.0
        means, stds = [], []
        for ch in range(x.shape[1]):
            hist = torch.bincount(x[:, ch].reshape(-1), minlength=256).double()
            n = hist.sum()
            mean = (hist * values).sum() / n
            var = (hist * (values - mean) ** 2).sum() / (n - 1)
            means.append(mean)
            stds.append(var.sqrt())
        mean_t, std_t = torch.stack(means), torch.stack(stds)
    else:
        # float64 accumulation: float32 sums over millions of pixels drift.
        flat = x.transpose(0, 1).reshape(x.shape[1], -1).double()
        mean_t, std_t = flat.mean(dim=1), flat.std(dim=1)
    return mean_t.float(), std_t.clamp_min(1e-12).float()


def _to_float(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    out = x.to(torch.float32).div_(255.0)
    out.sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1))
    return out


_Tensors4 = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@contextlib.contextmanager
def _left_as_found(root: Path) -> Iterator[None]:
    """A load that fails leaves the file system as it found it: the folders it created for the
    data root (torchvision makes them before it tries to download), or, under an existing root,
    the entries that were not there before (a partial download)."""
    created = next((f for f in reversed((root, *root.parents)) if not f.exists()), None)
    try:
        before = set(os.listdir(root)) if created is None and root.is_dir() else None
    except OSError:  # unreadable: the load will say so, and there is nothing to restore
        before = None
    try:
        yield
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        elif before is not None:
            for name in set(os.listdir(root)) - before:
                path = root / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        raise


def _load_raw(name: str, root: Path) -> _Tensors4:
    """uint8 images [N, C, H, W] and int64 labels for both splits of a real dataset."""
    entry = dataset_entry(name)
    # Deferred: importing torchvision takes seconds, and the synthetic set never needs it.
    from torchvision import datasets

    cls = getattr(datasets, str(entry.torchvision_class))
    if name == "fashion_mnist":
        try:
            _stage_debian_fashion_mnist(root)
        except OSError as exc:
            raise DatasetUnavailable(
                f"could not unpack {DEBIAN_FASHION_MNIST_DIR}/*.gz into "
                f"{root / 'FashionMNIST' / 'raw'} ({exc}); point NMOE_SIM_DATA / dataset.root at "
                "a writable folder"
            ) from exc

    try:
        train, test = _open(cls, root, download=False)
    except Exception:
        try:
            train, test = _open(cls, root, download=True)
        except Exception as exc:
            raise DatasetUnavailable(_unavailable_message(name, entry, root, exc)) from exc

    return (*_tensors(train), *_tensors(test))


def _tensors(ds: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole split at once from torchvision's backing arrays, skipping its per-image path."""
    if isinstance(ds.data, np.ndarray):
        # Colour sets (CIFAR) are numpy uint8 [N, H, W, C] with a Python list of labels.
        x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
        y = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
    else:
        x = ds.data.unsqueeze(1)  # grey sets (MNIST-like): uint8 [N, H, W] -> [N, 1, H, W]
        y = ds.targets.to(torch.int64)
    return x, y


def _open(cls: type, root: Path, *, download: bool) -> tuple[Any, Any]:
    # torchvision prints download progress and "already verified" notes; keep the simulator quiet.
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    return train, test


def _stage_debian_fashion_mnist(root: Path) -> None:
    """Unpack Debian's Fashion-MNIST archives into `root/FashionMNIST/raw/` if they are missing."""
    raw = root / "FashionMNIST" / "raw"
    missing = [f for f in _IDX_FILES if not (raw / f).is_file()]
    sources = [DEBIAN_FASHION_MNIST_DIR / f"{f}.gz" for f in missing]
    if not missing or not all(s.is_file() for s in sources):
        return
    raw.mkdir(parents=True, exist_ok=True)
    for fname, src in zip(missing, sources, strict=True):
        # Write beside the target then rename, so an interrupted copy never leaves a partial file
        # that torchvision would later accept as complete.
        fd, tmp = tempfile.mkstemp(dir=raw, prefix=f".{fname}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, gzip.open(src, "rb") as inp:
                shutil.copyfileobj(inp, out, length=1 << 20)
            os.replace(tmp, raw / fname)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def _unavailable_message(name: str, entry: DatasetEntry, root: Path, exc: BaseException) -> str:
    # One line: torchvision's errors span several (one per mirror tried).
    cause = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    head = f"dataset {name!r} is not available under {root} and could not be downloaded ({cause})."
    common = (
        f"run once on a machine with internet access (it downloads into {root}), or copy "
        f"torchvision's folder layout {root}/{entry.layout} from such a machine, or point "
        "NMOE_SIM_DATA / dataset.root at a folder that has it"
    )
    if name == "fashion_mnist":
        return (
            f"{head} To get it: `apt-get install dataset-fashion-mnist` (installs the IDX archives "
            f"in {DEBIAN_FASHION_MNIST_DIR}, which are unpacked automatically), or put the four "
            f"IDX files ({', '.join(_IDX_FILES)}) under {root / 'FashionMNIST' / 'raw'}/, or "
            f"{common}."
        )
    return f"{head} To get it: {common}."
