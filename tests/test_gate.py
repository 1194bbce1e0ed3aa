"""Top-k routing weights, the mixture, the load-balancing loss and routing noise."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nmoe_sim.models.gate import load_balance_loss, mix, noisy_scores, top_k_weights

# --- top_k_weights ----------------------------------------------------------------------------


def _top_k_by_hand(row: list[float], k: int) -> list[float]:
    """softmax over the k largest entries of row (assumed distinct), zero elsewhere."""
    kept = sorted(range(len(row)), key=lambda i: row[i], reverse=True)[:k]
    denom = sum(math.exp(row[j]) for j in kept)
    return [math.exp(row[i]) / denom if i in kept else 0.0 for i in range(len(row))]


def test_top_k_weights_small_example_by_hand() -> None:
    scores = torch.tensor([[1.0, 3.0, 2.0, 0.0]], dtype=torch.float64)
    w = top_k_weights(scores, 2)
    # Kept: experts 1 (score 3) and 2 (score 2): weights e^3/(e^3+e^2), e^2/(e^3+e^2).
    denom = math.exp(3) + math.exp(2)
    expected = [0.0, math.exp(3) / denom, math.exp(2) / denom, 0.0]
    assert w[0].tolist() == pytest.approx(expected, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    batch=st.integers(1, 5),
    experts=st.integers(1, 8),
)
def test_top_k_weights_matches_brute_force(data: st.DataObject, batch: int, experts: int) -> None:
    k = data.draw(st.integers(1, experts), label="k")
    rows = [
        data.draw(
            st.lists(
                st.floats(-20, 20, allow_nan=False),
                min_size=experts,
                max_size=experts,
                unique=True,
            ),
            label=f"row{b}",
        )
        for b in range(batch)
    ]
    w = top_k_weights(torch.tensor(rows, dtype=torch.float64), k)
    assert w.shape == (batch, experts)
    for b, row in enumerate(rows):
        expected = _top_k_by_hand(row, k)
        kept = {i for i, v in enumerate(expected) if v > 0}
        assert {i for i in range(experts) if w[b, i] > 0} == kept
        assert len(kept) == k
        assert w[b].tolist() == pytest.approx(expected, abs=1e-9)
        assert w[b].sum().item() == pytest.approx(1.0, abs=1e-12)


def test_top_k_weights_k1_is_one_hot_at_argmax() -> None:
    scores = torch.tensor([[0.1, -2.0, 5.0], [7.0, 6.9, -1.0], [0.0, 0.5, 0.4]])
    w = top_k_weights(scores, 1)
    expected = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert torch.equal(w, expected)


def test_top_k_weights_k_equal_experts_is_full_softmax() -> None:
    scores = torch.tensor([[0.0, math.log(2.0), math.log(5.0)]], dtype=torch.float64)
    # exp(scores) = 1, 2, 5 -> softmax = 1/8, 2/8, 5/8.
    w = top_k_weights(scores, 3)
    assert w[0].tolist() == pytest.approx([1 / 8, 2 / 8, 5 / 8], abs=1e-12)


@pytest.mark.parametrize("k", [0, -1, 5])
def test_top_k_weights_rejects_k_outside_1_to_experts(k: int) -> None:
    with pytest.raises(ValueError, match="top_k"):
        top_k_weights(torch.zeros(2, 4), k)


# --- mix --------------------------------------------------------------------------------------


def test_mix_equals_explicit_weighted_sum() -> None:
    g = torch.Generator().manual_seed(0)
    weights = torch.softmax(torch.randn(3, 4, generator=g, dtype=torch.float64), dim=-1)
    expert_probs = torch.softmax(torch.randn(3, 4, 5, generator=g, dtype=torch.float64), dim=-1)
    got = mix(weights, expert_probs)
    assert got.shape == (3, 5)
    for b in range(3):
        for c in range(5):
            expected = sum(weights[b, e].item() * expert_probs[b, e, c].item() for e in range(4))
            assert got[b, c].item() == pytest.approx(expected, abs=1e-12)
    # A convex combination of distributions is a distribution.
    torch.testing.assert_close(got.sum(-1), torch.ones(3, dtype=torch.float64))


def test_mix_small_example_by_hand() -> None:
    weights = torch.tensor([[0.25, 0.75]])
    expert_probs = torch.tensor([[[1.0, 0.0], [0.2, 0.8]]])
    # 0.25 * (1, 0) + 0.75 * (0.2, 0.8) = (0.4, 0.6)
    assert mix(weights, expert_probs)[0].tolist() == pytest.approx([0.4, 0.6], abs=1e-7)


# --- load_balance_loss ------------------------------------------------------------------------


def test_load_balance_loss_is_one_for_uniform_routing() -> None:
    # 4 inputs, 4 experts, each input routed to a different expert: f_e = 1/4.
    # Flat scores: P_e = 1/4. Loss = E * sum_e f_e P_e = 4 * 4 * (1/4 * 1/4) = 1.
    weights = torch.eye(4)
    assert load_balance_loss(torch.zeros(4, 4), weights).item() == pytest.approx(1.0, abs=1e-6)
    # Confident but balanced scores: by symmetry P_e is still 1/4 for every e.
    assert load_balance_loss(5.0 * torch.eye(4), weights).item() == pytest.approx(1.0, abs=1e-6)


def test_load_balance_loss_collapsed_onto_one_expert() -> None:
    # Every input routes to expert 0 (f = [1, 0, 0, 0]) with score ln 9 against 0, 0, 0,
    # so P_0 = 9 / (9 + 3) = 3/4 and the loss is 4 * 1 * 3/4 = 3.
    scores = torch.tensor([[math.log(9.0), 0.0, 0.0, 0.0]] * 5, dtype=torch.float64)
    weights = top_k_weights(scores, 1)
    loss = load_balance_loss(scores, weights).item()
    assert loss == pytest.approx(3.0, abs=1e-9)
    assert loss > 1.0


def test_load_balance_loss_top2_hand_example() -> None:
    # 2 inputs, 3 experts, top-2. Row 0 keeps experts 0, 1; row 1 keeps experts 0, 2.
    # Slots: expert 0 twice, 1 once, 2 once -> f = (2/4, 1/4, 1/4).
    # exp(scores): row 0 = (2, 1, 1) -> softmax (1/2, 1/4, 1/4);
    #              row 1 = (1, 1, 2) -> softmax (1/4, 1/4, 1/2).
    # P = mean = (3/8, 1/4, 3/8). Loss = 3 * (6/32 + 2/32 + 3/32) = 3 * 11/32 = 33/32.
    # (Row 1 ties experts 0 and 1 on score 0, so its weights are given explicitly.)
    ln2 = math.log(2.0)
    scores = torch.tensor([[ln2, 0.0, 0.0], [0.0, 0.0, ln2]], dtype=torch.float64)
    weights = torch.tensor([[0.6, 0.4, 0.0], [0.3, 0.0, 0.7]], dtype=torch.float64)
    assert load_balance_loss(scores, weights).item() == pytest.approx(33 / 32, abs=1e-12)


def test_load_balance_loss_gradient_flows_to_scores() -> None:
    scores = torch.tensor([[2.0, 0.0, 0.0], [1.0, 0.0, 0.5]], requires_grad=True)
    weights = top_k_weights(scores.detach(), 1)
    load_balance_loss(scores, weights).backward()
    assert scores.grad is not None
    # Softmax gradients sum to zero along each row.
    torch.testing.assert_close(scores.grad.sum(-1), torch.zeros(2))
    assert scores.grad.abs().sum() > 0


# --- noisy_scores -----------------------------------------------------------------------------


def test_noisy_scores_zero_std_returns_input_unchanged() -> None:
    scores = torch.tensor([[1.0, -2.0, 3.0]])
    out = noisy_scores(scores, 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(out, torch.tensor([[1.0, -2.0, 3.0]]))
    assert torch.equal(noisy_scores(scores, 0.0, None), scores)


def test_noisy_scores_seeded_generator_is_reproducible() -> None:
    scores = torch.zeros(4, 6)
    a = noisy_scores(scores, 0.5, torch.Generator().manual_seed(123))
    b = noisy_scores(scores, 0.5, torch.Generator().manual_seed(123))
    c = noisy_scores(scores, 0.5, torch.Generator().manual_seed(124))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # The added noise is exactly std * N(0, 1) drawn from that generator.
    expected = 0.5 * torch.randn(4, 6, generator=torch.Generator().manual_seed(123))
    torch.testing.assert_close(a, expected)
    assert torch.equal(scores, torch.zeros(4, 6)), "input not modified in place"
