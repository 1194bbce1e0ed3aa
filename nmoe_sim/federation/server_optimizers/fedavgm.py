"""FedAvgM (Hsu et al. 2019), server momentum: m <- momentum * m + Δ; w <- w + lr * m."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from nmoe_sim.federation.aggregate import Weights
from nmoe_sim.federation.server_optimizers.base import (
    Deltas,
    ServerOptimizer,
    check_decay,
    check_positive,
    moved,
)


@dataclass
class FedAvgM(ServerOptimizer):
    """The momentum buffer starts at zero, so the first step is lr * Δ."""

    lr: float = 1.0
    momentum: float = 0.9
    m: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_positive("lr", self.lr)
        check_decay("momentum", self.momentum)

    def step(self, current: Weights, delta: Deltas) -> Weights:
        steps: Deltas = {}
        for key, d in delta.items():
            m = self.m.get(key)
            self.m[key] = d.clone() if m is None else self.momentum * m + d
            steps[key] = self.lr * self.m[key]
        return moved(current, steps)
