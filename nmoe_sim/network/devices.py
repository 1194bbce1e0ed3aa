"""Compute time of nodes: FLOPs of the real work over the node's speed, one task at a time."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import simpy

SERVER = "server"


def client_node(client_id: int) -> str:
    return f"c{client_id}"


class Devices:
    """Each node is a SimPy resource of capacity one: a busy device makes later work wait."""

    def __init__(self, env: simpy.Environment, client_gflops: float, server_gflops: float) -> None:
        self.env = env
        self._speed = {"client": client_gflops * 1e9, "server": server_gflops * 1e9}
        self._busy: dict[str, simpy.Resource] = {}

    def duration_s(self, node: str, flops: float) -> float:
        return flops / self._speed["server" if node == SERVER else "client"]

    def work(self, node: str, flops: float, dispatch: Callable[[], Any]) -> Generator:
        """Occupy `node` for the modelled duration of `flops`.

        `dispatch()` starts the real computation when the device becomes free and returns a handle;
        its result is taken only when the simulated duration has elapsed (no clairvoyance).
        """
        resource = self._busy.setdefault(node, simpy.Resource(self.env, capacity=1))
        with resource.request() as req:
            yield req
            handle = dispatch()
            yield self.env.timeout(self.duration_s(node, flops))
            return handle.result()
