"""NT-Xent and the mixture NLL against losses written out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from nmoe_sim.learning.losses import mixture_nll, nt_xent


def _nt_xent_by_hand(cos: list[list[float]], positive: list[int], temperature: float) -> float:
    """Mean over anchors of -log(exp(s_ip / t) / sum_{j != i} exp(s_ij / t))."""
    total = 0.0
    for i, row in enumerate(cos):
        denom = sum(math.exp(row[j] / temperature) for j in range(len(row)) if j != i)
        total += -math.log(math.exp(row[positive[i]] / temperature) / denom)
    return total / len(cos)


def test_nt_xent_hand_computed_rotated_views() -> None:
    # Views v0, v1 from z1 and v2, v3 from z2 (rows of different lengths: nt_xent normalises).
    # Directions: v0 = (1,0), v1 = (0,1), v2 = (0,1), v3 = (-1,0).
    z1 = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    z2 = torch.tensor([[0.0, 3.0], [-0.5, 0.0]], dtype=torch.float64)
    cos = [
        [1.0, 0.0, 0.0, -1.0],
        [0.0, 1.0, 1.0, 0.0],
        [0.0, 1.0, 1.0, 0.0],
        [-1.0, 0.0, 0.0, 1.0],
    ]
    positive = [2, 3, 0, 1]  # i <-> i + N
    t = 0.5
    expected = _nt_xent_by_hand(cos, positive, t)
    # The same value in closed form: anchors 0 and 3 give log(2 + e^{-1/t}),
    # anchors 1 and 2 give log(2 + e^{1/t}).
    closed = 0.5 * (math.log(2 + math.exp(-1 / t)) + math.log(2 + math.exp(1 / t)))
    assert expected == pytest.approx(closed, abs=1e-12)
    assert nt_xent(z1, z2, t).item() == pytest.approx(expected, abs=1e-6)


def test_nt_xent_hand_computed_aligned_pairs_orthogonal_negatives() -> None:
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    z2 = z1.clone()
    t = 0.2
    # Every anchor: positive cosine 1, two negatives with cosine 0 -> log(1 + 2 e^{-1/t}).
    expected = math.log(1 + 2 * math.exp(-1 / t))
    assert nt_xent(z1, z2, t).item() == pytest.approx(expected, abs=1e-6)


def test_nt_xent_with_45_degree_views() -> None:
    # v0 = (1,0), v1 = (1,1)/sqrt2, v2 = (0,1), v3 = (1,-1)/sqrt2 ; c = 1/sqrt2.
    c = 1 / math.sqrt(2)
    z1 = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    z2 = torch.tensor([[0.0, 1.0], [1.0, -1.0]], dtype=torch.float64)
    cos = [
        [1.0, c, 0.0, c],
        [c, 1.0, c, 0.0],
        [0.0, c, 1.0, -c],
        [c, 0.0, -c, 1.0],
    ]
    t = 0.7
    expected = _nt_xent_by_hand(cos, [2, 3, 0, 1], t)
    assert nt_xent(z1, z2, t).item() == pytest.approx(expected, abs=1e-6)


def test_nt_xent_single_pair_has_no_negatives_so_zero_loss() -> None:
    # N = 1: the only other view is the positive, so softmax gives it probability 1.
    z1 = torch.tensor([[0.3, -1.2, 2.0]])
    z2 = torch.tensor([[-4.0, 0.1, 0.5]])
    assert nt_xent(z1, z2, 0.5).item() == pytest.approx(0.0, abs=1e-6)


def test_nt_xent_is_invariant_to_scaling_rows() -> None:
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(6, 5, generator=g, dtype=torch.float64)
    z2 = torch.randn(6, 5, generator=g, dtype=torch.float64)
    scale1 = torch.rand(6, 1, generator=g, dtype=torch.float64) * 10 + 0.1
    scale2 = torch.rand(6, 1, generator=g, dtype=torch.float64) * 10 + 0.1
    base = nt_xent(z1, z2, 0.3)
    assert nt_xent(z1 * scale1, z2 * scale2, 0.3).item() == pytest.approx(base.item(), abs=1e-9)
    assert nt_xent(z1 * 1000.0, z2 * 1000.0, 0.3).item() == pytest.approx(base.item(), abs=1e-9)


def test_nt_xent_is_symmetric_in_the_two_views() -> None:
    g = torch.Generator().manual_seed(1)
    z1 = torch.randn(5, 4, generator=g, dtype=torch.float64)
    z2 = torch.randn(5, 4, generator=g, dtype=torch.float64)
    # Swapping z1 and z2 only permutes the 2N anchors; the mean is unchanged.
    assert nt_xent(z1, z2, 0.5).item() == pytest.approx(nt_xent(z2, z1, 0.5).item(), abs=1e-9)


def test_nt_xent_prefers_aligned_pairs_to_shuffled_ones() -> None:
    eye = torch.eye(3, dtype=torch.float64)
    aligned = nt_xent(eye, eye.clone(), 0.5).item()
    shuffled = nt_xent(eye, eye[[1, 2, 0]], 0.5).item()
    # Aligned: positive cos 1; the four negatives are the two views of the other two basis
    # vectors, all orthogonal (cos 0) -> log(1 + 4 e^{-2}) at t = 0.5.
    assert aligned == pytest.approx(math.log(1 + 4 * math.exp(-2)), abs=1e-9)
    # Shuffled: the positive now has cos 0 while one negative has cos 1 -> log(e^2 + 4).
    assert shuffled == pytest.approx(math.log(math.exp(2) + 4), abs=1e-9)
    assert aligned < shuffled


def test_mixture_nll_hand_computed() -> None:
    probs = torch.tensor([[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]], dtype=torch.float64)
    labels = torch.tensor([1, 0, 1])
    expected = -(math.log(0.8) + math.log(0.5) + math.log(0.1)) / 3
    assert mixture_nll(probs, labels).item() == pytest.approx(expected, abs=1e-12)


def test_mixture_nll_clamps_zero_probability_at_1e_8() -> None:
    probs = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    # -(log 1 + log 1e-8) / 2 = 8 ln(10) / 2: finite, not inf.
    expected = 8 * math.log(10) / 2
    assert mixture_nll(probs, labels).item() == pytest.approx(expected, abs=1e-9)
