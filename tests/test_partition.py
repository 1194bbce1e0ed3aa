from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nmoe_sim.data import class_counts, client_test_indices, partition_indices


def _assert_partition(parts: list[np.ndarray], n: int, num_clients: int) -> None:
    assert len(parts) == num_clients
    for p in parts:
        assert p.dtype == np.int64
        assert np.all(np.diff(p) > 0), "each client's indices sorted and distinct"
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(n))


def _labels(n: int, num_classes: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, num_classes, size=n)


def _mean_entropy(counts: np.ndarray) -> float:
    p = counts / counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    return float(h.mean())


# --- conservation ---------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 400),
    num_clients=st.integers(1, 20),
    num_classes=st.integers(1, 10),
    seed=st.integers(0, 2**16),
)
def test_iid_conserves_and_balances(n: int, num_clients: int, num_classes: int, seed: int) -> None:
    num_clients = min(num_clients, n)
    labels = _labels(n, num_classes, seed)
    parts = partition_indices(labels, num_clients, "iid", rng=np.random.default_rng(seed))
    _assert_partition(parts, n, num_clients)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(20, 400),
    num_clients=st.integers(1, 10),
    num_classes=st.integers(1, 10),
    alpha=st.floats(0.05, 100.0),
    seed=st.integers(0, 2**16),
)
def test_dirichlet_conserves(
    n: int, num_clients: int, num_classes: int, alpha: float, seed: int
) -> None:
    labels = _labels(n, num_classes, seed)
    parts = partition_indices(
        labels,
        num_clients,
        "dirichlet",
        rng=np.random.default_rng(seed),
        alpha=alpha,
        min_samples=0,
    )
    _assert_partition(parts, n, num_clients)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 400),
    num_clients=st.integers(1, 20),
    classes_per_client=st.integers(1, 4),
    num_classes=st.integers(1, 10),
    seed=st.integers(0, 2**16),
)
def test_shards_conserve(
    n: int, num_clients: int, classes_per_client: int, num_classes: int, seed: int
) -> None:
    num_clients = max(1, min(num_clients, n // classes_per_client))
    if num_clients * classes_per_client > n:
        classes_per_client = 1
    labels = _labels(n, num_classes, seed)
    parts = partition_indices(
        labels,
        num_clients,
        "shards",
        rng=np.random.default_rng(seed),
        classes_per_client=classes_per_client,
    )
    _assert_partition(parts, n, num_clients)


def test_same_rng_state_same_partition() -> None:
    labels = _labels(1000, 10, 0)
    for scheme in ("iid", "dirichlet", "shards"):
        a = partition_indices(labels, 8, scheme, rng=np.random.default_rng(5))
        b = partition_indices(labels, 8, scheme, rng=np.random.default_rng(5))
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


# --- dirichlet statistics -------------------------------------------------------------------------


def test_dirichlet_realises_the_drawn_proportions() -> None:
    num_classes, num_clients, alpha = 10, 7, 0.5
    labels = _labels(50_000, num_classes, 1)
    parts = partition_indices(
        labels,
        num_clients,
        "dirichlet",
        rng=np.random.default_rng(42),
        alpha=alpha,
        min_samples=0,  # first attempt is always accepted, so its draw is the one re-derived below
    )
    # The documented draw order: first a [classes, clients] Dirichlet matrix.
    drawn = np.random.default_rng(42).dirichlet(np.full(num_clients, alpha), size=num_classes)
    counts = class_counts(labels, parts, num_classes)  # [clients, classes]
    per_class = np.bincount(labels, minlength=num_classes)
    realised = counts.T / per_class[:, None]  # [classes, clients], client shares of each class
    # Cut points are rounded cumulative shares, so each count is within one sample of p * n_c:
    # the share error is bounded by 1 / n_c (~2e-4 here), no statistics needed.
    bound = np.broadcast_to(1.0 / per_class[:, None], drawn.shape) + 1e-12
    np.testing.assert_array_less(np.abs(realised - drawn), bound)


def test_small_alpha_is_more_skewed_than_large_alpha() -> None:
    num_classes = 10
    labels = _labels(20_000, num_classes, 2)
    entropies = {}
    for alpha in (0.1, 100.0):
        parts = partition_indices(
            labels, 20, "dirichlet", rng=np.random.default_rng(3), alpha=alpha, min_samples=1
        )
        entropies[alpha] = _mean_entropy(class_counts(labels, parts, num_classes))
    # Near-uniform clients sit at log(10) ~ 2.30 nats; alpha = 0.1 leaves ~2-3 dominant classes.
    assert entropies[100.0] > 2.25
    assert entropies[0.1] < entropies[100.0] - 0.8


def test_dirichlet_min_samples_is_met() -> None:
    labels = _labels(2000, 10, 4)
    parts = partition_indices(
        labels, 10, "dirichlet", rng=np.random.default_rng(0), alpha=0.3, min_samples=50
    )
    assert min(len(p) for p in parts) >= 50


def test_dirichlet_min_samples_unreachable_raises() -> None:
    labels = _labels(1000, 10, 5)
    # Feasible on paper (50 x 20 = 1000) but a Dirichlet draw never splits that evenly.
    with pytest.raises(ValueError, match=r"raise alpha.*min_samples"):
        partition_indices(
            labels, 50, "dirichlet", rng=np.random.default_rng(0), alpha=0.1, min_samples=20
        )


def test_dirichlet_min_samples_infeasible_raises_at_once() -> None:
    with pytest.raises(ValueError, match="min_samples"):
        partition_indices(
            np.zeros(100, dtype=int), 20, "dirichlet", rng=np.random.default_rng(0), min_samples=10
        )


# --- shards ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("num_clients", "classes_per_client"), [(10, 2), (20, 1), (5, 4), (25, 2)])
def test_shards_limit_classes_per_client(num_clients: int, classes_per_client: int) -> None:
    num_classes, per_class = 10, 300
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(num_classes), per_class))
    parts = partition_indices(
        labels,
        num_clients,
        "shards",
        rng=np.random.default_rng(1),
        classes_per_client=classes_per_client,
    )
    _assert_partition(parts, len(labels), num_clients)
    counts = class_counts(labels, parts, num_classes)
    assert ((counts > 0).sum(axis=1) <= classes_per_client).all()


def test_bad_arguments() -> None:
    labels = np.zeros(10, dtype=int)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="scheme"):
        partition_indices(labels, 2, "nope", rng=rng)
    with pytest.raises(ValueError, match="num_clients"):
        partition_indices(labels, 0, "iid", rng=rng)
    with pytest.raises(ValueError, match="num_clients"):
        partition_indices(labels, 11, "iid", rng=rng)
    with pytest.raises(ValueError, match="alpha"):
        partition_indices(labels, 2, "dirichlet", rng=rng, alpha=0.0)
    with pytest.raises(ValueError, match="shards"):
        partition_indices(labels, 6, "shards", rng=rng, classes_per_client=2)


# --- class counts and per-client test splits ------------------------------------------------------


def test_class_counts() -> None:
    labels = np.array([0, 1, 1, 2, 2, 2])
    counts = class_counts(labels, [np.array([0, 3]), np.array([1, 2, 4, 5])], 4)
    np.testing.assert_array_equal(counts, [[1, 0, 1, 0], [0, 2, 2, 0]])


def _hamilton(row: np.ndarray, total: int) -> np.ndarray:
    """Independent largest-remainder reference in exact rational arithmetic."""
    exact = [Fraction(float(p)) * total for p in row]
    floors = [int(e) for e in exact]
    left = total - sum(floors)
    order = sorted(range(len(row)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return np.array(floors)


def test_client_test_indices_follow_proportions_exactly() -> None:
    num_classes = 10
    test_labels = np.random.default_rng(0).permutation(np.repeat(np.arange(num_classes), 1000))
    train_labels = _labels(6000, num_classes, 1)
    parts = partition_indices(
        train_labels, 12, "dirichlet", rng=np.random.default_rng(2), alpha=0.3, min_samples=20
    )
    counts = class_counts(train_labels, parts, num_classes)
    proportions = counts / counts.sum(axis=1, keepdims=True)
    for n in (1, 37, 500):
        test_parts = client_test_indices(test_labels, proportions, n, np.random.default_rng(3))
        got = class_counts(test_labels, test_parts, num_classes)
        for k, row in enumerate(proportions):
            np.testing.assert_array_equal(got[k], _hamilton(row, n))
            assert len(np.unique(test_parts[k])) == len(test_parts[k]) == n
            assert np.all(np.diff(test_parts[k]) > 0)


def test_client_test_indices_cap_at_class_size() -> None:
    test_labels = np.array([0] * 5 + [1] * 100)
    proportions = np.array([[0.5, 0.5], [1.0, 0.0]])
    parts = client_test_indices(test_labels, proportions, 40, np.random.default_rng(0))
    got = class_counts(test_labels, parts, 2)
    np.testing.assert_array_equal(got, [[5, 20], [5, 0]])
    for p in parts:
        assert len(np.unique(p)) == len(p)


def test_client_test_indices_rejects_bad_rows() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        client_test_indices(np.zeros(10, int), np.array([[0.5, 0.2]]), 5, np.random.default_rng(0))
