"""Execution backends: where client tasks really run (this process, or Ray actors)."""

from __future__ import annotations

from collections.abc import Iterable

from nmoe_sim.config import RuntimeConfig
from nmoe_sim.runtime.backend import Backend, InProcessBackend
from nmoe_sim.runtime.hosting import ClientFactory


def make_backend(
    runtime: RuntimeConfig, factory: ClientFactory, client_ids: Iterable[int]
) -> Backend:
    if runtime.backend == "ray":
        from nmoe_sim.runtime.ray_backend import RayBackend  # Ray is slow to import

        return RayBackend(factory, client_ids, runtime)
    return InProcessBackend(factory, client_ids)
