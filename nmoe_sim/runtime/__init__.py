"""Execution backends: where client tasks really run (this process, or Ray actors)."""

from __future__ import annotations

from collections.abc import Iterable

from nmoe_sim.config import RuntimeConfig
from nmoe_sim.runtime.backend import Backend, InProcessBackend


def make_backend(runtime: RuntimeConfig, client_ids: Iterable[int]) -> Backend:
    """Start the scenario's backend; its hosts boot while the caller loads the data, then
    `backend.host(factory)` gives them their clients."""
    if runtime.backend == "ray":
        from nmoe_sim.runtime.ray_backend import RayBackend  # Ray is slow to import

        return RayBackend(client_ids, runtime)
    return InProcessBackend(client_ids)
