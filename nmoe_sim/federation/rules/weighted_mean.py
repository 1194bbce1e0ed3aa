"""FedAvg's rule: the sample-weighted mean of the updates kept since the last flush."""

from __future__ import annotations

from nmoe_sim.federation.aggregate import Weights, weighted_average
from nmoe_sim.federation.server_optimizers import FedAvg, ServerOptimizer
from nmoe_sim.learning.client import Update


class WeightedMean:
    """FedAvg (McMahan et al. 2017): updates wait until `flush`, which proposes
    sum_i n_i w_i / sum_i n_i over them, in the order they were applied (sync rounds apply
    them in selection order), for the optimizer to step towards. A flush with nothing pending
    leaves the model and its version unchanged."""

    def __init__(self, initial: Weights, optimizer: ServerOptimizer | None = None) -> None:
        self.weights = initial
        self.version = 0
        self.optimizer = optimizer or FedAvg()
        self.pending: list[Update] = []

    def hold(self, version: int) -> None:
        pass

    def release(self, version: int) -> None:
        pass

    def apply(self, update: Update, version: int, staleness: int) -> None:
        self.pending.append(update)

    def flush(self) -> None:
        if not self.pending:
            return
        aggregate = weighted_average(
            [u.weights for u in self.pending], [u.num_samples for u in self.pending]
        )
        self.pending.clear()
        self.weights = self.optimizer.toward(self.weights, aggregate)
        self.version += 1
