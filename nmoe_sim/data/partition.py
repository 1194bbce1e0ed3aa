"""Splitting a labelled dataset across federated clients, and matching per-client test splits.

All randomness comes from the `np.random.Generator` passed in, so a partition is a pure function of
(labels, arguments, generator state).
"""

from __future__ import annotations

import numpy as np

SCHEMES = ("iid", "dirichlet", "shards")

# Dirichlet redraws before giving up; with feasible settings a handful suffice.
_MAX_DIRICHLET_TRIES = 1000


def partition_indices(
    labels: np.ndarray,
    num_clients: int,
    scheme: str,
    *,
    rng: np.random.Generator,
    alpha: float = 0.5,
    classes_per_client: int = 2,
    min_samples: int = 10,
) -> list[np.ndarray]:
    """Split sample indices `0..len(labels)-1` across `num_clients` clients.

    - `iid`: shuffle, then cut into near-equal parts.
    - `dirichlet`: for each class, client shares ~ Dir(alpha); redrawn until every client holds at
      least `min_samples` samples. Each attempt draws, in this order, one `[classes, clients]`
      matrix `rng.dirichlet(np.full(num_clients, alpha), size=num_classes)` (classes in sorted
      order of `np.unique(labels)`) and then one permutation per class; client k receives
      `round(cumsum(p)[k] * n_c) - round(cumsum(p)[k-1] * n_c)` samples of class c, so its realised
      share differs from the drawn one by at most 1/n_c.
    - `shards`: sort by label (random order within a class), cut into
      `num_clients * classes_per_client` shards and deal each client `classes_per_client` of them.

    Every index appears in exactly one client's array; each array is sorted ascending.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    n = len(labels)
    if num_clients < 1:
        raise ValueError(f"num_clients must be at least 1, got {num_clients}")
    if num_clients > n:
        raise ValueError(f"num_clients={num_clients} exceeds the {n} samples to split")

    if scheme == "iid":
        parts = np.array_split(rng.permutation(n), num_clients)
    elif scheme == "dirichlet":
        parts = _dirichlet(labels, num_clients, rng, alpha, min_samples)
    elif scheme == "shards":
        parts = _shards(labels, num_clients, rng, classes_per_client)
    else:
        raise ValueError(f"unknown partition scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    return [np.sort(p).astype(np.int64, copy=False) for p in parts]


def _dirichlet(
    labels: np.ndarray,
    num_clients: int,
    rng: np.random.Generator,
    alpha: float,
    min_samples: int,
) -> list[np.ndarray]:
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    if min_samples < 0:
        raise ValueError(f"min_samples must be non-negative, got {min_samples}")
    n = len(labels)
    if num_clients * min_samples > n:
        raise ValueError(
            f"cannot give {num_clients} clients {min_samples} samples each from {n} samples; "
            "lower min_samples or the number of clients"
        )
    classes = np.unique(labels)
    members = [np.flatnonzero(labels == c) for c in classes]

    for _ in range(_MAX_DIRICHLET_TRIES):
        shares = rng.dirichlet(np.full(num_clients, alpha), size=len(classes))
        chunks: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        for idx, p in zip(members, shares, strict=True):
            # Rounded cumulative cut points: counts sum to n_c exactly, each within 1 of p * n_c.
            cuts = np.rint(np.cumsum(p)[:-1] * len(idx)).astype(np.int64)
            for k, piece in enumerate(np.split(rng.permutation(idx), cuts)):
                chunks[k].append(piece)
        parts = [np.concatenate(c) for c in chunks]
        if min(len(p) for p in parts) >= min_samples:
            return parts
    raise ValueError(
        f"dirichlet partition: no draw in {_MAX_DIRICHLET_TRIES} tries gave every one of "
        f"{num_clients} clients at least {min_samples} samples (alpha={alpha}, {n} samples); "
        "raise alpha, or lower min_samples or the number of clients"
    )


def _shards(
    labels: np.ndarray, num_clients: int, rng: np.random.Generator, classes_per_client: int
) -> list[np.ndarray]:
    if classes_per_client < 1:
        raise ValueError(f"classes_per_client must be at least 1, got {classes_per_client}")
    num_shards = num_clients * classes_per_client
    if num_shards > len(labels):
        raise ValueError(
            f"shards: {num_clients} clients x {classes_per_client} classes_per_client = "
            f"{num_shards} shards exceed the {len(labels)} samples"
        )
    # Shuffle first so the stable sort leaves a random order inside each class.
    shuffled = rng.permutation(len(labels))
    order = shuffled[np.argsort(labels[shuffled], kind="stable")]
    shards = np.array_split(order, num_shards)
    deal = rng.permutation(num_shards).reshape(num_clients, classes_per_client)
    return [np.concatenate([shards[s] for s in row]) for row in deal]


def class_counts(labels: np.ndarray, parts: list[np.ndarray], num_classes: int) -> np.ndarray:
    """Per-client label histogram, int64 `[clients, classes]`."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got {labels.min()}..{labels.max()}"
        )
    out = np.zeros((len(parts), num_classes), dtype=np.int64)
    for k, idx in enumerate(parts):
        out[k] = np.bincount(labels[np.asarray(idx, dtype=np.int64)], minlength=num_classes)
    return out


def largest_remainder(proportions: np.ndarray, total: int) -> np.ndarray:
    """Integer counts summing to `total`, closest to `proportions * total` (Hamilton's method).

    Leftover units go to the largest fractional parts; ties go to the lower class index.
    """
    p = np.asarray(proportions, dtype=np.float64)
    exact = p * total
    counts = np.floor(exact).astype(np.int64)
    leftover = int(total - counts.sum())
    if leftover > 0:
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[:leftover]] += 1
    return counts


def client_test_indices(
    test_labels: np.ndarray,
    proportions: np.ndarray,
    samples_per_client: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """A test split per client that follows that client's own label distribution.

    `proportions` is `[clients, classes]`, rows summing to 1 (e.g. normalised train class counts).
    Client k gets `largest_remainder(proportions[k], samples_per_client)` samples per class, drawn
    without replacement from the test samples of that class (capped at what the class has, so a
    client may get fewer). Different clients may share test samples. Each array is sorted.
    """
    test_labels = np.asarray(test_labels)
    p = np.asarray(proportions, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"proportions must be [clients, classes], got shape {p.shape}")
    if samples_per_client < 0:
        raise ValueError(f"samples_per_client must be non-negative, got {samples_per_client}")
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("each row of proportions must be non-negative and sum to 1")
    num_classes = p.shape[1]
    if test_labels.size and (test_labels.min() < 0 or test_labels.max() >= num_classes):
        raise ValueError(f"test labels must lie in [0, {num_classes}) to match proportions")

    pools = [np.flatnonzero(test_labels == c) for c in range(num_classes)]
    out = []
    for row in p:
        counts = largest_remainder(row, samples_per_client)
        picks = [
            rng.choice(pool, size=min(int(m), len(pool)), replace=False)
            for pool, m in zip(pools, counts, strict=True)
            if m > 0
        ]
        chosen = np.concatenate(picks) if picks else np.empty(0, dtype=np.int64)
        out.append(np.sort(chosen).astype(np.int64, copy=False))
    return out
