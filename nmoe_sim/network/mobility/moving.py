"""The network of one world while its clients move: at each handover, the client's access links
(and, where device-to-device links follow the cell, its d2d links) move to the new cell.

Real stacks: an LTE X2 or NR Xn handover keeps the client's IP address and its TCP connections
(the core network re-routes the tunnel); the source cell forwards what it holds to the target
cell, and the client is cut off for a few tens of milliseconds (3GPP's interruption time; about
50 ms is typical of LTE). We model exactly that: transfers in flight are neither lost nor sent
twice; they pause for `interruption_ms` and go on over the new path, with their TCP state
(window, round under way) kept. Not modelled: packets lost at the handover and the
retransmissions or timeouts they may cause, and the signalling's own bytes.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from nmoe_sim.network.flows import FlowNetwork
from nmoe_sim.network.mobility.attachment import Handover, Mobility

# How far ahead handovers are looked up at a time; the world's clock wakes once per window.
WINDOW_S = 60.0


class MovingNetwork:
    """A `NetworkModel`: the world's `FlowNetwork`, rewired at each handover of its clients."""

    def __init__(
        self, inner: FlowNetwork, mobility: Mobility, d2d: dict[str, float] | None
    ) -> None:
        self.inner = inner
        self.mobility = mobility
        self.d2d = d2d  # the attributes of a d2d link where they follow the cell, else None
        self.attached: dict[str, str] = {}
        self._env: simpy.Environment | None = None
        self.handovers_applied = 0

    def carry(
        self, env: simpy.Environment, src: str, dst: str, size_bytes: int
    ) -> Generator[Any, Any, tuple[str, ...]]:
        if self._env is None:
            self._start(env)
        return (yield from self.inner.carry(env, src, dst, size_bytes))

    def _start(self, env: simpy.Environment) -> None:
        """Attach every client where it is at the world's first transfer, then follow them."""
        self._env = env
        now = float(env.now)
        mobility = self.mobility
        home = mobility.layout.home
        self.attached = dict(home)
        for client in mobility.clients:
            station = mobility.serving_at(client, now)
            if station != self.attached[client]:
                self._move(client, station, 0.0)
        if mobility.hands_over:
            env.process(self._follow(env, now))

    def _follow(self, env: simpy.Environment, since: float) -> Generator[Any, Any, None]:
        """Apply each handover at its time, for as long as anything else happens in the world:
        a clock run to exhaustion (the serving stage's) must not be kept alive by clients
        walking on in an idle world."""
        t = since
        while True:
            for event in self.mobility.handovers_between(t, t + WINDOW_S):
                if event.t_s > env.now:
                    if _idle(env):
                        return
                    yield env.timeout(event.t_s - env.now)
                self._handover(event)
            t += WINDOW_S
            if _idle(env):
                return
            yield env.timeout(t - env.now)

    def _handover(self, event: Handover) -> None:
        if self.attached[event.client] != event.target:
            self._move(event.client, event.target, self.mobility.interruption_s)
            self.handovers_applied += 1

    def _move(self, client: str, target: str, interruption_s: float) -> None:
        g = self.inner.topology.graph
        source = self.attached[client]
        up = dict(g.edges[client, source])
        down = dict(g.edges[source, client])
        remove = [(client, source), (source, client)]
        add = [(client, target, up), (target, client, down)]
        if self.d2d is not None:
            for mate in [v for v in g.succ[client] if g.nodes[v]["role"] == "client"]:
                remove += [(client, mate), (mate, client)]
            for mate, station in self.attached.items():
                if station == target and mate != client:
                    add += [(client, mate, self.d2d), (mate, client, self.d2d)]
        self.attached[client] = target
        self.inner.rewire(client, remove, add, interruption_s)


def _idle(env: simpy.Environment) -> bool:
    """Nothing else is scheduled: no process can ever wake again (SimPy's queue is empty)."""
    queue: list[Any] = env._queue  # SimPy's heap of events
    return not queue
