"""Which links of a topology change over time, and their schedules (what the flow network reads).

`LinkChanges` answers the flow network's `schedule(u, v)`: None for a link that never changes,
else a `LinkProfile`, a pure function of simulated time combining, for that link, the topology's
fixed numbers, a trace (capacity, and latency and loss where the trace gives them), a fading
factor on the capacity and a Gilbert-Elliott loss process. Links are classed by their ends'
roles: `access` (a client and a non-client; up: from the client), `d2d` (two clients) and
`backhaul` (two non-clients; up: towards the cloud, or between two base stations from the one
named first).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from nmoe_sim.network.dynamics.schema import DynamicsConfig, LinkChangesConfig
from nmoe_sim.network.dynamics.synthetic import GilbertElliott, LognormalFading
from nmoe_sim.network.dynamics.traces import Trace, TraceError, read_trace
from nmoe_sim.network.flows import LinkState
from nmoe_sim.network.radio.rates import Radio
from nmoe_sim.network.topology import Topology
from nmoe_sim.seeds import numpy_rng
from nmoe_sim.strict import MIN_MBPS

MIN_CAPACITY_BPS = MIN_MBPS * 1e6  # a faded or traced rate never drops below this (an outage)


class StepSource(Protocol):
    def value_at(self, t_s: float) -> tuple[float, float]:
        """(value at t, time the next value starts)."""
        ...


class LinkProfile:
    """One link's state over time: the fixed numbers, replaced or scaled by what changes."""

    __slots__ = (
        "capacity",
        "capacity_bps",
        "factor",
        "latency",
        "latency_s",
        "loss",
        "loss_rate",
        "max_bps",
    )

    def __init__(
        self,
        capacity_bps: float,
        latency_s: float,
        loss_rate: float,
        *,
        capacity: StepSource | None = None,
        latency: StepSource | None = None,
        loss: StepSource | None = None,
        factor: StepSource | None = None,
        max_bps: float = math.inf,
    ) -> None:
        self.capacity_bps = capacity_bps
        self.max_bps = max_bps  # the most the link can carry, faded or not (a radio's bound)
        self.latency_s = latency_s
        self.loss_rate = loss_rate
        self.capacity = capacity
        self.latency = latency
        self.loss = loss
        self.factor = factor

    def state_at(self, t_s: float) -> LinkState:
        until = math.inf
        capacity = self.capacity_bps
        if self.capacity is not None:
            capacity, next_s = self.capacity.value_at(t_s)
            until = min(until, next_s)
        if self.factor is not None:
            scale, next_s = self.factor.value_at(t_s)
            capacity = min(capacity * scale, self.max_bps)
            until = min(until, next_s)
        latency = self.latency_s
        if self.latency is not None:
            latency, next_s = self.latency.value_at(t_s)
            until = min(until, next_s)
        loss = self.loss_rate
        if self.loss is not None:
            loss, next_s = self.loss.value_at(t_s)
            until = min(until, next_s)
        return LinkState(max(capacity, MIN_CAPACITY_BPS), latency, loss, until)


@dataclass(frozen=True)
class LinkRole:
    """A link's class, its direction, and the node whose seeded offset its traces use."""

    kind: str  # access | d2d | backhaul
    direction: str  # up | down
    anchor: str  # the client (access, d2d sender) or the base station (backhaul)
    station: str = ""  # an access link's other end: the base station (or hub) serving it


def link_role(topology: Topology, u: str, v: str) -> LinkRole:
    ru, rv = topology.role(u), topology.role(v)
    if ru == "client" and rv == "client":
        return LinkRole("d2d", "up", u)
    if ru == "client":
        return LinkRole("access", "up", u, v)
    if rv == "client":
        return LinkRole("access", "down", v, u)
    if rv == "cloud" or (ru != "cloud" and u < v):
        return LinkRole("backhaul", "up", u)
    return LinkRole("backhaul", "down", v)


class LinkChanges:
    """The `LinkDynamics` of one run: schedules built on first use and shared by every world."""

    def __init__(
        self,
        cfg: DynamicsConfig,
        topology: Topology,
        seed: int,
        read: Callable[[str, LinkChangesConfig], Trace] | None = None,
        radio: Radio | None = None,
    ) -> None:
        self.cfg = cfg
        self.topology = topology
        self.seed = seed
        self.radio = radio
        self._read = read or _TraceCache().read
        self._single = {(c.a, c.b): c for c in cfg.links}
        self._profiles: dict[tuple[str, str], LinkProfile | None] = {}

    def schedule(
        self, u: str, v: str, attrs: Mapping[str, Any] | None = None
    ) -> LinkProfile | None:
        """The schedule of u -> v (fixed numbers `attrs`, by default the topology's: a moving
        client's access link to another cell is not in the run's topology)."""
        key = (u, v)
        if key not in self._profiles:
            self._profiles[key] = self._profile(u, v, attrs or self.topology.link(u, v))
        return self._profiles[key]

    def used(self) -> dict[tuple[str, str], LinkProfile]:
        """The changing links some world has used so far, with their schedules."""
        return {k: p for k, p in self._profiles.items() if p is not None}

    def medium(self, u: str, v: str) -> tuple[str, str] | None:
        """The cell spectrum an access link shares in time (radio links only)."""
        if self.radio is None:
            return None
        role = link_role(self.topology, u, v)
        if role.kind != "access":
            return None
        return self.radio.medium(role.station, role.direction)

    def _targets(self, u: str, v: str, role: LinkRole) -> list[tuple[LinkChangesConfig, str]]:
        """The targets that may set something on u -> v, most specific first, each with the
        direction it calls this link."""
        out: list[tuple[LinkChangesConfig, str]] = []
        if (u, v) in self._single:
            out.append((self._single[(u, v)], "up"))
        if (v, u) in self._single:
            out.append((self._single[(v, u)], "down"))
        if role.kind == "access":
            device_class = self.topology.device_class(role.anchor)
            if device_class in self.cfg.device_classes:
                out.append((self.cfg.device_classes[device_class], role.direction))
        out.append((getattr(self.cfg, role.kind), role.direction))
        return out

    def _profile(self, u: str, v: str, attrs: Mapping[str, Any]) -> LinkProfile | None:
        role = link_role(self.topology, u, v)
        trace: Trace | None = None
        fading: LognormalFading | None = None
        loss: GilbertElliott | None = None
        for target, direction in self._targets(u, v, role):
            file = target.traces().get(direction)
            if trace is None and file is not None:
                trace = self._read(file, target)
                if target.offset == "random":
                    draw = float(numpy_rng(self.seed, "dynamics", "offset", role.anchor).random())
                    trace = trace.shifted(draw * trace.length_s)
            if fading is None and target.fading is not None:
                f = target.fading
                rng = numpy_rng(self.seed, "dynamics", "fading", u, v)
                fading = LognormalFading(f.sigma, f.correlation_s, f.step_s, rng)
            if loss is None and target.gilbert_elliott is not None:
                g = target.gilbert_elliott
                rng = numpy_rng(self.seed, "dynamics", "loss", u, v)
                loss = GilbertElliott(g.good_s, g.bad_s, g.good_loss, g.bad_loss, rng)
        capacity: StepSource | None = None if trace is None else trace.capacity_bps
        max_bps = math.inf
        if self.radio is not None and role.kind == "access":
            capacity = self.radio.rate(role.anchor, role.station, role.direction)
            max_bps = self.radio.max_rate_bps(role.direction)  # fading cannot pass the bound
        if capacity is None and fading is None and loss is None:
            return None
        return LinkProfile(
            attrs["bandwidth_mbps"] * 1e6,
            attrs["latency_ms"] / 1e3,
            attrs.get("loss_rate", 0.0),
            capacity=capacity,
            max_bps=max_bps,
            latency=None if trace is None else trace.latency_s,
            loss=loss if loss is not None else (None if trace is None else trace.loss),
            factor=fading,
        )


class _TraceCache:
    """Each trace file read once per run, whatever number of links use it."""

    def __init__(self) -> None:
        self._traces: dict[tuple[str, str, bool, int], Trace] = {}

    def read(self, file: str, target: LinkChangesConfig) -> Trace:
        key = (file, target.format, target.repeat, target.bin_ms)
        found = self._traces.get(key)
        if found is None:
            found = self._traces[key] = read_trace(
                Path(file), target.format, repeat=target.repeat, bin_ms=target.bin_ms
            )
        return found


class DynamicsError(ValueError):
    """Dynamics that cannot apply to this topology; the message names the key. `unreadable`
    and `defect`: a trace file is missing, or has a defect of its own."""

    def __init__(self, message: str, *, unreadable: bool = False, defect: bool = False) -> None:
        super().__init__(message)
        self.unreadable = unreadable
        self.defect = defect


def build_link_changes(
    cfg: DynamicsConfig, topology: Topology, seed: int, radio: Radio | None = None
) -> LinkChanges | None:
    """The run's changing links, every trace read and every target checked against the
    topology (raises `TraceError` or `DynamicsError` naming the key); None when nothing changes."""
    if radio is not None:
        for where, _, _target in cfg.files():
            if where.startswith(("network.dynamics.access.", "network.dynamics.device_classes.")):
                raise DynamicsError(
                    f"{where}: the radio model (network.radio) sets the access links' rates; "
                    "drop the trace or turn the radio model off"
                )
    if not cfg.enabled and radio is None:
        return None
    cache = _TraceCache()
    for where, file, target in cfg.files():
        try:
            cache.read(file, target)
        except TraceError as err:
            raise DynamicsError(
                f"{where}: {err}", unreadable=err.unreadable, defect=not err.unreadable
            ) from None
    kinds = {link_role(topology, u, v).kind for u, v in topology.graph.edges}
    for kind in ("access", "d2d", "backhaul"):
        if getattr(cfg, kind).is_set() and kind not in kinds:
            raise DynamicsError(
                f"network.dynamics.{kind}: this topology has no {kind} links; drop the section "
                f"or choose a topology with them (links: {', '.join(sorted(kinds))})"
            )
    client_classes = {topology.device_class(c) for c in topology.clients}
    for name in cfg.device_classes:
        if name not in client_classes:
            raise DynamicsError(
                f"network.dynamics.device_classes.{name}: no client has device class {name!r} "
                f"(the clients' classes: {', '.join(sorted(client_classes))})"
            )
    for i, single in enumerate(cfg.links):
        for node in (single.a, single.b):
            if node not in topology.graph:
                raise DynamicsError(
                    f"network.dynamics.links[{i}]: unknown node {node!r}; name nodes of the "
                    "topology"
                )
        if not topology.graph.has_edge(single.a, single.b):
            raise DynamicsError(
                f"network.dynamics.links[{i}]: no link {single.a!r} - {single.b!r} in the topology"
            )
    return LinkChanges(cfg, topology, seed, cache.read, radio)
