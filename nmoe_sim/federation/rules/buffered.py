"""FedBuff's rule: client deltas buffered, one server step per full buffer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import torch

from nmoe_sim.federation.aggregate import Weights
from nmoe_sim.federation.server_optimizers import Deltas, FedAvg, ServerOptimizer
from nmoe_sim.federation.staleness import StalenessFn, constant
from nmoe_sim.learning.client import Update


class Buffered:
    """FedBuff (Nguyen et al. 2022): buffer each client's delta against the model it started
    from; every `buffer_size` deltas the pseudo-gradient is their mean
    Δ = sum_i n_i f(s_i) delta_i / sum_i n_i (n: sample count, f: `staleness_fn`, constant by
    default), the optimizer steps along it (FedAvg: w + lr Δ) and the version is bumped. A
    partly filled buffer is stepped on `flush`.

    Keeps only the versions some client in flight started from (plus the current one).
    """

    def __init__(
        self,
        initial: Weights,
        buffer_size: int,
        staleness_fn: StalenessFn | None = None,
        optimizer: ServerOptimizer | None = None,
    ) -> None:
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1 (got {buffer_size})")
        self.weights = initial
        self.version = 0
        self.buffer_size = buffer_size
        self.staleness_fn = staleness_fn or constant()
        self.optimizer = optimizer or FedAvg()
        self.history: dict[int, Weights] = {0: initial}
        self.holders: Counter[int] = Counter()
        self.buffer: list[tuple[Weights, float, float]] = []  # (delta, n * f(s), n)

    def hold(self, version: int) -> None:
        self.holders[version] += 1

    def release(self, version: int) -> None:
        self.holders[version] -= 1
        self._forget(version)

    def _forget(self, version: int) -> None:
        if self.holders[version] <= 0 and version != self.version:
            del self.holders[version]
            self.history.pop(version, None)

    def apply(self, update: Update, version: int, staleness: int) -> None:
        base = self.history[version]
        delta = {
            key: update.weights[key].to(torch.float64) - w.to(torch.float64)
            for key, w in base.items()
            if torch.is_floating_point(w)
        }
        n = float(update.num_samples)
        self.buffer.append((delta, n * self.staleness_fn(staleness), n))
        self.release(version)
        if len(self.buffer) == self.buffer_size:
            self._step()

    def _step(self) -> None:
        total = sum(n for _, _, n in self.buffer)
        if total <= 0:
            raise ValueError("FedBuff needs a positive total sample count in its buffer")
        mean: Deltas = {
            key: _tensor_sum(delta[key] * (weight / total) for delta, weight, _ in self.buffer)
            for key, w in self.weights.items()
            if torch.is_floating_point(w)
        }
        stepped = self.optimizer.step(self.weights, mean)
        # Integer buffers are not stepped: the server keeps its own.
        out = {key: stepped.get(key, w) for key, w in self.weights.items()}
        self.buffer.clear()
        previous = self.version
        self.weights = out
        self.version += 1
        self.history[self.version] = out
        self._forget(previous)

    def flush(self) -> None:
        # The run is over: a partly filled buffer is applied rather than thrown away.
        if self.buffer:
            self._step()


def _tensor_sum(terms: Iterable[torch.Tensor]) -> torch.Tensor:
    """`sum(terms)`, typed: the buffer is never empty when stepped, so the sum is a tensor."""
    total = sum(terms)
    assert isinstance(total, torch.Tensor)
    return total
