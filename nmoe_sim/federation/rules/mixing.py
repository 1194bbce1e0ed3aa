"""FedAsync's rule: each update mixed into the server model as it lands."""

from __future__ import annotations

from nmoe_sim.federation.aggregate import Weights, weighted_average
from nmoe_sim.federation.server_optimizers import FedAvg, ServerOptimizer
from nmoe_sim.federation.staleness import StalenessFn, constant
from nmoe_sim.learning.client import Update


def mix(server: Weights, client: Weights, alpha: float) -> Weights:
    """(1 - alpha) * server + alpha * client: FedAvg's weighted mean of the two (integer buffers
    keep the server's value)."""
    return weighted_average([server, client], [1.0 - alpha, alpha])


class Mixing:
    """FedAsync (Xie et al. 2019): each update proposes (1 - a_s) w + a_s w_client with
    a_s = mixing * staleness_fn(s) (constant by default) for the optimizer to step towards, and
    bumps the version."""

    def __init__(
        self,
        initial: Weights,
        mixing: float,
        staleness_fn: StalenessFn | None = None,
        optimizer: ServerOptimizer | None = None,
    ) -> None:
        if not 0 < mixing <= 1:
            raise ValueError(f"mixing must be in (0, 1] (got {mixing})")
        self.weights = initial
        self.version = 0
        self.mixing = mixing
        self.staleness_fn = staleness_fn or constant()
        self.optimizer = optimizer or FedAvg()

    def hold(self, version: int) -> None:
        pass

    def release(self, version: int) -> None:
        pass

    def apply(self, update: Update, version: int, staleness: int) -> None:
        alpha = self.mixing * self.staleness_fn(staleness)
        self.weights = self.optimizer.toward(self.weights, mix(self.weights, update.weights, alpha))
        self.version += 1

    def flush(self) -> None:
        pass
