"""Losses of the three stages."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's normalised-temperature cross-entropy over 2N views.

    Row i of z1 and row i of z2 are two views of the same input (the positive pair); every other
    view in the batch is a negative. Mean over all 2N anchors.
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))  # a view is not its own negative
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, positive)


def mixture_nll(
    mixed_probs: torch.Tensor, labels: torch.Tensor, sample_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Negative log-likelihood of the mixture's class probabilities (weighted mean if weights)."""
    picked = mixed_probs.gather(1, labels[:, None]).squeeze(1)
    nll = -torch.log(picked.clamp_min(1e-8))
    if sample_weight is None:
        return nll.mean()
    return (nll * sample_weight).sum() / sample_weight.sum()
