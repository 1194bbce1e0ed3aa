"""The gating network and top-k routing.

`g = softmax(topk(h W_g + noise, k))`: scores outside the top k get zero weight and the softmax is
taken over the k kept scores only, so the kept weights sum to one.
"""

from __future__ import annotations

import torch
from torch import nn

TRUNK_PREFIX = (
    "trunk."  # FedGate averages these parameters; the rest (the output layer) stays personal
)


class Gate(nn.Module):
    def __init__(self, feature_dim: int, hidden: int, num_experts: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU())
        self.out = nn.Linear(hidden, num_experts)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Raw scores, one per expert."""
        return self.out(self.trunk(h))


def top_k_weights(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Dense [batch, experts] weights: softmax over each row's k largest scores, zero elsewhere."""
    if not 1 <= k <= scores.shape[-1]:
        raise ValueError(f"top_k={k} must lie in 1..{scores.shape[-1]}")
    top = scores.topk(k, dim=-1)
    masked = torch.full_like(scores, float("-inf")).scatter(-1, top.indices, top.values)
    return torch.softmax(masked, dim=-1)


def mask_scores(scores: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """`scores` [..., experts] with every expert outside the index tensor `experts` at -inf, so
    top-k never picks it (while k <= len(experts)) and a softmax gives it exactly zero."""
    keep = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
    keep[experts.to(scores.device)] = True
    return scores.masked_fill(~keep, float("-inf"))


def noisy_scores(
    scores: torch.Tensor, noise_std: float, generator: torch.Generator | None
) -> torch.Tensor:
    if noise_std <= 0:
        return scores
    noise = torch.randn(scores.shape, generator=generator, dtype=scores.dtype)
    return scores + noise_std * noise.to(scores.device)


def load_balance_loss(scores: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Switch-style auxiliary loss `E * sum_e f_e * P_e`; equals 1 when load is uniform.

    f_e is the fraction of routing slots given to expert e (from the top-k weights' support) and
    P_e the mean full-softmax probability of e; only P_e carries gradient.
    """
    experts = scores.shape[-1]
    slots = (weights > 0).float()
    fraction = slots.sum(0) / slots.sum()
    prob = torch.softmax(scores, dim=-1).mean(0)
    return experts * torch.sum(fraction * prob)


def mix(weights: torch.Tensor, expert_probs: torch.Tensor) -> torch.Tensor:
    """Mixture class probabilities: weights [B, E] x expert probabilities [B, E, C] -> [B, C]."""
    return torch.einsum("be,bec->bc", weights, expert_probs)
