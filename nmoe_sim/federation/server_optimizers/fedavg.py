"""FedAvg's server step: w <- w + lr * Δ (lr 1: the aggregate itself)."""

from __future__ import annotations

from dataclasses import dataclass

from nmoe_sim.federation.aggregate import Weights
from nmoe_sim.federation.server_optimizers.base import (
    Deltas,
    ServerOptimizer,
    check_positive,
    moved,
)


@dataclass
class FedAvg(ServerOptimizer):
    """Plain server SGD on the pseudo-gradient; stateless."""

    lr: float = 1.0

    def __post_init__(self) -> None:
        check_positive("lr", self.lr)

    def step(self, current: Weights, delta: Deltas) -> Weights:
        return moved(current, {key: self.lr * d for key, d in delta.items()})

    def toward(self, current: Weights, aggregate: Weights) -> Weights:
        # w + 1 * (aggregate - w) can differ from the aggregate in the last bit: at lr 1 the
        # server adopts the aggregate exactly, as FedAvg always has.
        if self.lr == 1.0:
            return aggregate
        return super().toward(current, aggregate)
