"""Compute time of nodes: FLOPs of the real work over the node's speed, one task at a time."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

SERVER = "server"


def client_node(client_id: int) -> str:
    return f"c{client_id}"


class TaskDropped(Exception):
    """A client's task was lost (the device went away); decided when the task ends."""

    def __init__(self, node: str) -> None:
        super().__init__(f"task on {node} dropped")
        self.node = node


@dataclass(frozen=True)
class DeviceProfile:
    """Speed of every node in FLOP/s (stragglers already applied) and the task dropout rate."""

    speed_flops: Mapping[str, float]
    dropout: float = 0.0

    @classmethod
    def build(
        cls,
        num_clients: int,
        *,
        client_gflops: Sequence[float],
        server_gflops: float,
        straggler_fraction: float = 0.0,
        straggler_slowdown: float = 1.0,
        lognormal_sigma: float = 0.0,
        dropout: float = 0.0,
        rng: np.random.Generator,
    ) -> DeviceProfile:
        """Each client's compute-time factor: `slowdown` for a random `fraction` of clients,
        times exp(N(0, sigma^2)); its speed is its class speed over that factor."""
        factor = np.ones(num_clients)
        slowed = rng.choice(num_clients, round(straggler_fraction * num_clients), replace=False)
        factor[slowed] *= straggler_slowdown
        if lognormal_sigma > 0:
            factor *= np.exp(rng.normal(0.0, lognormal_sigma, num_clients))
        speeds = {client_node(c): client_gflops[c] * 1e9 / factor[c] for c in range(num_clients)}
        speeds[SERVER] = server_gflops * 1e9
        return cls(speeds, dropout)


class Devices:
    """Each node is a SimPy resource of capacity one: a busy device makes later work wait."""

    def __init__(
        self, env: simpy.Environment, profile: DeviceProfile, dropout_rng: np.random.Generator
    ) -> None:
        self.env = env
        self.profile = profile
        self._dropout_rng = dropout_rng
        self._busy: dict[str, simpy.Resource] = {}

    def duration_s(self, node: str, flops: float) -> float:
        return flops / self.profile.speed_flops[node]

    def work(
        self, node: str, flops: float, dispatch: Callable[[], Any], *, may_drop: bool = False
    ) -> Generator:
        """Occupy `node` for the modelled duration of `flops`.

        `dispatch()` starts the real computation when the device becomes free and returns a handle;
        its result is taken only when the simulated duration has elapsed (no clairvoyance). A
        federated client task (`may_drop`) may be lost (`TaskDropped`), decided at that moment,
        never in advance.
        """
        resource = self._busy.setdefault(node, simpy.Resource(self.env, capacity=1))
        with resource.request() as req:
            yield req
            handle = dispatch()
            yield self.env.timeout(self.duration_s(node, flops))
            result = handle.result()
        lost = may_drop and node != SERVER and self.profile.dropout > 0
        if lost and self._dropout_rng.random() < self.profile.dropout:
            raise TaskDropped(node)
        return result
