"""Compute time of nodes: FLOPs of the real work over the node's speed, one task at a time."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

SERVER = "server"


def client_node(client_id: int) -> str:
    return f"c{client_id}"


class TaskDropped(Exception):
    """A client's task was lost, decided when the task ends: `reason` is "dropout" (a random
    loss), "offline" (the client's availability window had closed) or "host_lost" (the process
    really computing it died)."""

    def __init__(self, node: str, reason: str) -> None:
        super().__init__(f"task on {node} dropped ({reason})")
        self.node = node
        self.reason = reason


@dataclass(frozen=True)
class DeviceProfile:
    """Speed of every node in FLOP/s (stragglers already applied) and the task dropout rate."""

    speed_flops: Mapping[str, float]
    dropout: float = 0.0
    # Availability: node -> (phase_s, period_s, online_fraction): online while
    # (t - phase) mod period < online_fraction * period. Nodes not listed are always online.
    availability: Mapping[str, tuple[float, float, float]] = field(default_factory=dict)

    def online(self, node: str, t_s: float) -> bool:
        window = self.availability.get(node)
        if window is None:
            return True
        phase, period, fraction = window
        return (t_s - phase) % period < fraction * period

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
        availability_period_s: float | None = None,
        online_fraction: float = 1.0,
        rng: np.random.Generator,
    ) -> DeviceProfile:
        """Each client's compute-time factor: `slowdown` for a random `fraction` of clients,
        times exp(N(0, sigma^2)); its speed is its class speed over that factor."""
        factor = np.ones(num_clients)
        slowed = rng.choice(num_clients, round(straggler_fraction * num_clients), replace=False)
        factor[slowed] *= straggler_slowdown
        if lognormal_sigma > 0:
            factor *= np.exp(rng.normal(0.0, lognormal_sigma, num_clients))
        # Python floats, not numpy scalars: a numpy duration would make the clock's `now`, and
        # every network computation after it, numpy arithmetic (same values, several times slower).
        speeds = {
            client_node(c): float(client_gflops[c] * 1e9 / factor[c]) for c in range(num_clients)
        }
        speeds[SERVER] = float(server_gflops * 1e9)
        availability = {}
        if availability_period_s is not None and online_fraction < 1:
            phases = rng.uniform(0.0, availability_period_s, num_clients)
            availability = {
                client_node(c): (float(phases[c]), availability_period_s, online_fraction)
                for c in range(num_clients)
            }
        return cls(speeds, dropout, availability)


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

    def _resource(self, node: str) -> simpy.Resource:
        resource = self._busy.get(node)
        if resource is None:
            resource = self._busy[node] = simpy.Resource(self.env, capacity=1)
        return resource

    def occupy(self, node: str, seconds: float) -> Generator[Any, Any, float]:
        """Hold `node` for `seconds` once it is free (FIFO behind earlier work); returns the
        time the work started. For work whose result is already known (the serving stage's
        measured outputs): only its time on the device is simulated."""
        with self._resource(node).request() as req:
            yield req
            start = self.env.now
            yield self.env.timeout(seconds)
        return start

    def work(
        self, node: str, flops: float, dispatch: Callable[[], Any], *, may_drop: bool = False
    ) -> Generator[Any, Any, Any]:
        """Occupy `node` for the modelled duration of `flops`.

        `dispatch()` starts the real computation when the device becomes free and returns a handle;
        its result is taken only when the simulated duration has elapsed (no clairvoyance). A
        federated client task (`may_drop`) may be lost (`TaskDropped`), decided at that moment,
        never in advance.
        """
        with self._resource(node).request() as req:
            yield req
            handle = dispatch()
            yield self.env.timeout(self.duration_s(node, flops))
            result = handle.result()
        if may_drop and node != SERVER:
            if not self.profile.online(node, self.env.now):
                raise TaskDropped(node, "offline")
            if self.profile.dropout > 0 and self._dropout_rng.random() < self.profile.dropout:
                raise TaskDropped(node, "dropout")
        return result
