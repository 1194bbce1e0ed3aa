"""Aggregation rules."""

from __future__ import annotations

from collections.abc import Sequence

import torch

Weights = dict[str, torch.Tensor]


def weighted_average(models: Sequence[Weights], weights: Sequence[float]) -> Weights:
    """FedAvg: sum_i w_i * theta_i / sum_i w_i, key by key, in float64 for exactness.

    Integer buffers (e.g. BatchNorm's batch counter) are not averaged: the first model's is kept.
    """
    if not models or len(models) != len(weights):
        raise ValueError("weighted_average needs one weight per model and at least one model")
    total = float(sum(weights))
    if total <= 0:
        raise ValueError("weighted_average needs a positive total weight")
    keys = models[0].keys()
    out: Weights = {}
    for key in keys:
        first = models[0][key]
        if not torch.is_floating_point(first):
            out[key] = first.clone()
            continue
        acc = torch.zeros_like(first, dtype=torch.float64)
        for model, w in zip(models, weights, strict=True):
            acc += model[key].to(torch.float64) * (w / total)
        out[key] = acc.to(first.dtype)
    return out
