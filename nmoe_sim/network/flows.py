"""Transfers over a topology's links, sharing each link max-min fairly, on the one SimPy clock.

Model of one transfer from A to B (`FlowNetwork.carry`):

1. the message follows `topology.path(A, B)` (least latency);
2. the network's transport (`nmoe_sim.network.transports`: `fluid` by default here, `tcp` in
   scenarios) says what it costs: a delay before it transmits (the path's latency; for TCP also
   handshakes and store-and-forward), the bits to move (TCP adds headers), a bound on its rate
   (TCP: window, loss) and whether it starts in slow start;
3. after that delay it transmits its bits at its max-min fair rate (capped by its bound). Rates
   are recomputed at every simulated instant at which a transmission starts or ends (once per
   instant: starts and ends at one instant are simultaneous, whatever order the code issues them
   in), so a flow runs at half rate while it shares a bottleneck with an equal flow and at full
   rate once that flow is gone. A flow in slow
   start pauses between the windows it sends (`nmoe_sim.network.ramp`, in closed form: no timer
   per round trip); its pauses are re-planned when its rate changes. Bandwidths are in Mbps =
   1e6 bits/s.

`carry` returns the path it took (the generator's return value: `path = yield from net.carry(...)`)
so the channel can write it into the trace. Downloads are unicast: a model sent to n clients
crosses a shared backhaul n times.

Why it is fast enough for a million transfers: flows are grouped into *classes*. A class is the
set of flows that cross the same shared links (links carrying two or more flows) and have the same
cap (the least of their own bound and the bandwidth of their links that carry them alone).
Max-min gives every member of a class the same rate, so a class keeps one "virtual clock" `v_bits`
(bits each member has sent since the class was born), a heap of its members' finishing points on
that clock, and one entry in the network's heap of due times (SimPy itself holds a single wake-up
for the earliest). A start or end touches the flow's links and marks its classes; the last start
or wake-up of the instant re-solves max-min only over the classes connected to the marked ones
through shared links (progressive filling, with heaps), and the classes whose rate changed are
re-armed: work per instant scales with the classes nearby, not with the active flows. Ties are
broken by flow id and by the order events were scheduled, so equal inputs give equal outputs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from heapq import heapify, heappop, heappush
from typing import Any, Protocol

import simpy
from simpy.events import NORMAL, Timeout

from nmoe_sim.network.ramp import Ramp
from nmoe_sim.network.topology import Topology
from nmoe_sim.network.transports import FluidTransport, Hop, Message, Route, Transport

BITS_PER_MEGABIT = 1e6
_UNPLANNED = -1.0  # finish_v of a flow in slow start until its class's re-share plans it
# A flow within this many bits of its end counts as done (absorbs floating-point drift).
_DONE_EPS_BITS = 1e-6
_DONE_EPS_REL = 1e-12


class LinkState:
    """What a link is from some time on: its capacity, one-way latency and loss, and the time
    until which that holds (`until_s`; inf: for good). Schedules hand these to the network."""

    __slots__ = ("capacity_bps", "latency_s", "loss", "until_s")

    def __init__(self, capacity_bps: float, latency_s: float, loss: float, until_s: float) -> None:
        self.capacity_bps = capacity_bps
        self.latency_s = latency_s
        self.loss = loss
        self.until_s = until_s


class LinkSchedule(Protocol):
    """A link whose state changes over simulated time: a pure function of time, so every world
    (each method's clock) sees the same link at the same simulated time."""

    def state_at(self, t_s: float) -> LinkState: ...


class LinkDynamics(Protocol):
    """Which links change: the schedule of the directed link u -> v (whose fixed numbers are
    `attrs`: bandwidth_mbps, latency_ms, loss_rate), or None for a fixed one; and the medium a
    changing link shares in time with others (a cell's spectrum in one direction), or None."""

    def schedule(self, u: str, v: str, attrs: Mapping[str, Any]) -> LinkSchedule | None: ...

    def medium(self, u: str, v: str) -> Any: ...


class _Medium:
    """A resource links share in time (a cell's spectrum in one direction): each of its links
    that carries flows gets an equal share of the time, so its capacity is its schedule's
    (`nominal_bps`, with the whole medium) over the number of such links."""

    __slots__ = ("busy",)

    def __init__(self) -> None:
        self.busy: dict[_Link, None] = {}  # member links carrying flows (an ordered set)

    def share(self, link: _Link) -> int:
        """How many links share the medium once `link` carries flows."""
        n = len(self.busy)
        return n if link in self.busy else n + 1


class _Event:
    """An event of the network's own on the SimPy clock: a transmission's start after its
    path's latency, a wake-up, or the end a transfer's process waits for. It has what SimPy's
    loop and processes read of an event (`callbacks`, then `_ok` and `_value`) and no more, and
    `_schedule` queues it as `Environment.schedule` does (time, priority, then insertion order),
    so the clock orders it exactly as it would a `Timeout`. Made and queued from the compiled core
    it costs no Python frame (`Timeout`, `Event.succeed` and `schedule` are Python), which made the
    clock benchmark 4-6 % faster. It is never handed to user code: carry's process yields it, and
    SimPy resumes the process."""

    __slots__ = ("_ok", "_value", "callbacks")

    def __init__(self, callbacks: Any, value: Any) -> None:
        self.callbacks = callbacks  # a list a process appends to, or a timer's shared tuple
        self._value = value
        self._ok = True  # (read only once triggered, as SimPy's own events are)


def _schedule(env: simpy.Environment, event: _Event, delay: float) -> None:
    """Queue `event` `delay` seconds from now, as `env.schedule(event, NORMAL, delay)` would."""
    queue: Any = env._queue  # SimPy's heap of (time, priority, insertion number, event)
    heappush(queue, (env._now + delay, NORMAL, next(env._eid), event))


class _Link:
    __slots__ = (
        "capacity_bps",
        "classes",
        "flows",
        "index",
        "key",
        "latency_s",
        "loss",
        "mark",
        "medium",
        "nominal_bps",
        "pos",
        "residual_bps",
        "routes",
        "schedule",
        "state_version",
        "timer_at",
        "timer_token",
        "unfrozen",
        "until_s",
        "users",
        "version",
    )

    def __init__(
        self, index: int, capacity_bps: float, schedule: LinkSchedule | None = None
    ) -> None:
        self.index = index
        self.key = (index,)  # the shared links' part of a class key, when it is the only one
        self.capacity_bps = capacity_bps
        self.flows: dict[int, _Flow] = {}  # transmitting flows on this link, by id
        self.classes: dict[_Class, None] = {}  # classes for which this link is shared (ordered set)
        self.mark = 0  # scratch for component search
        self.residual_bps = 0.0  # scratch for water-filling, with the three below
        self.unfrozen = 0
        self.pos = 0
        self.version = 0
        # A link that changes over time (`schedule`): its state is read from the schedule when
        # it is used at or after `until_s`, and while flows depend on it (`users`: the flows
        # transmitting on routes that cross it either way) a timer (at `timer_at`, valid while
        # its token is `timer_token`) applies each change when it happens. Routes whose
        # transport constants depend on it are in `routes`.
        self.schedule = schedule
        self.latency_s = 0.0
        self.loss = 0.0
        self.until_s = -math.inf if schedule is not None else math.inf
        self.state_version = 0
        self.routes: list[_Route] = []
        self.timer_at = math.inf
        self.timer_token = 0
        self.users = 0
        self.medium: _Medium | None = None  # what it shares in time, if anything
        self.nominal_bps = capacity_bps  # its schedule's capacity, before the medium's share


class _Route:
    __slots__ = (
        "flows",
        "latency_s",
        "links",
        "path",
        "reverse",
        "seen",
        "stale",
        "transport_path",
        "watch",
    )

    def __init__(
        self, path: tuple[str, ...], links: tuple[_Link, ...], latency_s: float, transport_path: Any
    ) -> None:
        self.path = path
        self.links = links
        self.latency_s = latency_s
        self.transport_path = transport_path  # the transport's constants for this path
        # Where a link of the path (either way) changes over time: those links, the sum of their
        # state versions the constants were computed at, the path back, and the flows now
        # transmitting on it (their bounds follow the constants).
        self.watch: tuple[_Link, ...] = ()
        self.seen = 0
        self.reverse: tuple[str, ...] = ()
        self.flows: dict[int, _Flow] = {}
        self.stale = False  # the topology was rewired under it: messages look their route up again


class _Mark:
    """A flow's finishing point on its class's virtual clock: an entry of the class's heap,
    ordered by (finish_v, fid). An entry goes stale when the flow leaves the class or is
    re-planned (`live_in` tells) and is dropped when it reaches the top.

    This and `_Due` are classes with `__lt__` rather than tuples because the heaps compare
    entries a dozen times per push and pop: compiled, `__lt__` reads two floats, where a tuple's
    comparison tests the first items for equality and then for order through the generic
    protocol (twice as slow; the heaps were about a tenth of the tcp clock benchmark)."""

    __slots__ = ("fid", "finish_v", "flow")

    def __init__(self, finish_v: float, fid: int, flow: _Flow) -> None:
        self.finish_v = finish_v
        self.fid = fid
        self.flow = flow

    def __lt__(self, other: _Mark) -> bool:
        return self.finish_v < other.finish_v or (
            self.finish_v == other.finish_v and self.fid < other.fid
        )

    def live_in(self, cls: _Class) -> bool:
        """Not stale: its flow is still in `cls` and still planned to finish here."""
        return self.flow.cls is cls and self.flow.finish_v == self.finish_v


class _Due:
    """A class's next completion time: an entry of the network's heap of due times, ordered by
    (t, seq); stale once the class is re-armed (`version`) or dropped."""

    __slots__ = ("cls", "seq", "t", "version")

    def __init__(self, t: float, seq: int, cls: _Class, version: int) -> None:
        self.t = t
        self.seq = seq
        self.cls = cls
        self.version = version

    def __lt__(self, other: _Due) -> bool:
        return self.t < other.t or (self.t == other.t and self.seq < other.seq)


class _Share:
    """A link's fair share of its residual capacity in water-filling, ordered by (share, pos,
    version): entries of a link whose share moved since (an older version) are stale."""

    __slots__ = ("link", "pos", "share", "version")

    def __init__(self, share: float, pos: int, version: int, link: _Link) -> None:
        self.share = share
        self.pos = pos
        self.version = version
        self.link = link

    def __lt__(self, other: _Share) -> bool:
        if self.share != other.share:
            return self.share < other.share
        if self.pos != other.pos:
            return self.pos < other.pos
        return self.version < other.version


class _Cap:
    """A class's own cap in water-filling, ordered by (cap, pos)."""

    __slots__ = ("cap", "cls", "pos")

    def __init__(self, cap: float, pos: int, cls: _Class) -> None:
        self.cap = cap
        self.pos = pos
        self.cls = cls

    def __lt__(self, other: _Cap) -> bool:
        return self.cap < other.cap or (self.cap == other.cap and self.pos < other.pos)


class _Flow:
    __slots__ = (
        "cap_bps",
        "cls",
        "done",
        "fid",
        "finish_v",
        "links",
        "message",
        "own_cap",
        "ramp",
        "route",
        "size_bits",
        "t_start_s",
    )

    def __init__(
        self,
        fid: int,
        route: _Route,
        size_bits: float,
        done: _Event,
        t: float,
        cap_bps: float,
        ramp: Ramp | None,
        message: Message,
    ):
        self.fid = fid
        self.message = message
        self.route = route
        self.links = route.links
        self.size_bits = size_bits
        self.done = done
        self.t_start_s = t
        self.cap_bps = cap_bps  # its own bound (window, loss); links bound it too
        self.ramp = ramp  # slow start, while it may still be window-limited
        self.cls: _Class | None = None
        self.finish_v = 0.0  # point on its class's virtual clock where it is done
        self.own_cap = cap_bps  # its bound and its links alone's: what caps it in a group


class _Class:
    __slots__ = (
        "alive",
        "cap_bps",
        "caps",
        "due_fid",
        "frozen",
        "group",
        "heap",
        "key",
        "links",
        "mark",
        "n",
        "new_rate_bps",
        "pos",
        "ramping",
        "rate_bps",
        "t_last_s",
        "unplanned",
        "v_bits",
        "version",
    )

    def __init__(self, key: tuple[tuple[int, ...], float], links: tuple[_Link, ...], t: float):
        self.key = key
        self.links = links  # the shared links, in link-index order
        self.cap_bps = key[1]
        self.n = 0
        # Its members' finishing points; entries of flows that moved to another class or were
        # re-planned go stale and are dropped when they reach the top.
        self.heap: list[_Mark] = []
        self.v_bits = 0.0
        self.t_last_s = t
        self.rate_bps = 0.0
        self.new_rate_bps = 0.0
        self.version = 0
        self.due_fid = -1  # the head the pending timer was armed for
        self.alive = True
        self.mark = 0
        self.pos = 0  # scratch for water-filling, with `frozen`
        self.frozen = False
        # Members in slow start (ordered set, made on first use): re-planned when the rate moves.
        self.ramping: dict[_Flow, None] | None = None
        # Members in slow start that joined since the last re-share: planned there.
        self.unplanned: list[_Flow] = []
        # A group (key cap inf, networks whose links change): members with caps of their own,
        # the least of them first (`_CapMark`s, stale once a member left or its cap moved).
        self.group = False
        self.caps: list[_CapMark] = []


class _CapMark:
    """A group member's own cap, ordered by (cap, fid); stale once the flow left the group or
    its cap moved."""

    __slots__ = ("cap", "fid", "flow")

    def __init__(self, cap: float, fid: int, flow: _Flow) -> None:
        self.cap = cap
        self.fid = fid
        self.flow = flow

    def __lt__(self, other: _CapMark) -> bool:
        return self.cap < other.cap or (self.cap == other.cap and self.fid < other.fid)

    def live_in(self, cls: _Class) -> bool:
        return self.flow.cls is cls and self.flow.own_cap == self.cap


def _least_cap(cls: _Class) -> float:
    """A class's cap: its key's, or for a group the least cap of its members."""
    if not cls.group:
        return cls.cap_bps
    caps = cls.caps
    while caps:
        head = caps[0]
        if head.live_in(cls):
            return head.cap
        heappop(caps)
    return math.inf


@dataclass(frozen=True)
class FlowRecord:
    """One finished transmission, kept only with `record_history=True` (for tests)."""

    flow_id: int
    path: tuple[str, ...]
    size_bits: float
    t_tx_start_s: float  # after the propagation delay
    t_end_s: float


class FlowNetwork:
    """Implements the `NetworkModel` protocol over a `Topology` with max-min fair link sharing.

    One instance serves one `simpy.Environment` (bound at the first transfer). Counters:
    `transfers_completed`, `active_flows`, `peak_active_flows`. With `record_history=True` it also
    keeps, for tests, `history`: after every re-share the time and each transmitting flow's rate
    (`(t_s, {flow_id: rate_bps})`), and `records`: one `FlowRecord` per finished transmission.
    Both cost work proportional to the active flows per event.
    """

    def __init__(
        self,
        topology: Topology,
        *,
        transport: Transport | None = None,
        dynamics: LinkDynamics | None = None,
        record_history: bool = False,
    ) -> None:
        self.topology = topology
        self.transport: Transport = FluidTransport() if transport is None else transport
        self.dynamics = dynamics
        self._env: simpy.Environment | None = None
        self._links: dict[tuple[str, str], _Link] = {}
        self._link_list: list[_Link] = []
        self._routes: dict[tuple[str, str], _Route] = {}
        self._transport_routes: dict[tuple[str, str], Route] = {}
        self._hops: dict[tuple[str, str], Hop] = {}
        self._classes: dict[tuple[tuple[int, ...], float], _Class] = {}
        self._n_active = 0
        self._next_fid = 0
        self._epoch = 0
        # Classes' completion times live in our own heap; SimPy holds a single wake-up for its
        # earliest entry. A re-armed class then leaves a stale entry here instead of a stale
        # SimPy event in the clock's queue.
        self._due: list[_Due] = []
        self._due_seq = 0
        self._wake_at = math.inf
        self._wake_token = 0
        self._waking = False
        # Classes whose max-min rates may have moved this instant, re-solved once by the last of
        # the instant's starts and wake-ups that the network knows of.
        self._pending: list[_Class] = []
        self._unsolved = False
        self._starts_due: dict[float, int] = {}  # transmissions to start, by time
        self.transfers_completed = 0
        self.peak_active_flows = 0
        self.history: list[tuple[float, dict[int, float]]] | None = [] if record_history else None
        self.records: list[FlowRecord] | None = [] if record_history else None
        # Bound once, in tuples the timers share (SimPy's loop only iterates a timer's callbacks).
        self._start_cbs = (self._start_after_latency,)
        self._wake_cbs = (self._on_wake,)
        self._link_cbs = (self._on_link_timer,)
        self._resume_cbs = (self._resume,)
        self.link_changes_applied = 0  # link changes that met transmitting flows
        # Rewiring (handovers): until when each node is cut off, and the route each transfer
        # moved to (read by its `carry` to report the path it ended on).
        self._blocked: dict[str, float] = {}
        self._rerouted: dict[_Event, _Route] = {}
        self.flows_rerouted = 0
        self._media: dict[Any, _Medium] = {}
        self._timers_due: dict[float, int] = {}  # link timers queued, by time (stale ones too)
        # Skip re-solving max-min where a flow's own cap changes without binding (the numbers
        # are the same either way; tests turn it off to check that).
        self.skip_unbinding_solves = True
        # Where links change, flows of one set of shared links form one group whatever their
        # own caps (fading makes every cap different: a class each would make every start and
        # end re-solve and re-arm them all); water-filling splits off the members whose cap
        # binds. Fixed networks keep one class per (shared links, cap), as they always did
        # (tests turn grouping off to compare: the rates are the same either way).
        self.group_classes = dynamics is not None

    # ---------------------------------------------------------------- public

    def carry(
        self, env: simpy.Environment, src: str, dst: str, size_bytes: int
    ) -> Generator[simpy.Event, Any, tuple[str, ...]]:
        """Move `size_bytes` from `src` to `dst`; returns the path taken (a tuple of node names).

        The transport decides what the message costs beyond its bits (headers, handshake, slow
        start). `src == dst` costs no time. A zero-byte message costs the path latency only.
        """
        if size_bytes < 0:
            raise ValueError(f"size_bytes must be >= 0, got {size_bytes}")
        if env is not self._env:
            self._bind(env)
        if self._blocked:
            wait = self._blocked_until(src, dst) - env.now
            if wait > 0:  # an end is in a handover: the message waits for it to end
                yield Timeout(env, wait)
        route = self._routes.get((src, dst))
        if route is None:
            route = self._route(src, dst)
        if route.watch:
            self._sync_route(route, env.now)
        if size_bytes > 0 and route.links:
            transport = self.transport
            now = env.now  # (a property: read once)
            message = transport.open(route.transport_path, src, dst, size_bytes, now)
            done = _Event([], None)
            if message.delay_s > 0:
                # The transmission starts from the timer's callback: one process wake-up per
                # transfer instead of two.
                self._start_later(route, message, done, route.seen, message.delay_s, now)
            else:
                self._start(route, message, done, now, route.seen)
            window_bits = yield done  # type: ignore[misc]  # SimPy reads only what _Event has
            transport.close(message, window_bits, env.now)
            if self._rerouted:
                route = self._rerouted.pop(done, route)
        elif route.latency_s > 0:
            yield Timeout(env, route.latency_s)
        return route.path

    @property
    def active_flows(self) -> int:
        """Flows transmitting now (propagating messages not included)."""
        return self._n_active

    def rates(self) -> dict[int, float]:
        """Current rate of every transmitting flow, bits/s, by flow id (ids count from 0)."""
        out = {}
        for cls in self._classes.values():
            for mark in cls.heap:
                if mark.live_in(cls):
                    out[mark.fid] = cls.rate_bps
        return dict(sorted(out.items()))

    # ---------------------------------------------------------------- routes

    def _bind(self, env: simpy.Environment) -> None:
        if self._env is not None:
            raise ValueError(
                "this FlowNetwork already runs on another simpy.Environment; "
                "make one FlowNetwork per environment"
            )
        self._env = env

    def _route(self, src: str, dst: str) -> _Route:
        topo = self.topology
        path = topo.path(src, dst)
        links = [self._link(u, v) for u, v in itertools.pairwise(path)]
        if self.dynamics is not None and links:
            reverse = topo.path(dst, src)
            watch = [link for link in links if link.schedule is not None]
            for u, v in itertools.pairwise(reverse):
                link = self._link(u, v)
                if link.schedule is not None and link not in watch:
                    watch.append(link)
            if watch:
                route = _Route(path, tuple(links), 0.0, None)
                route.reverse = reverse
                route.watch = tuple(watch)
                for link in watch:
                    link.routes.append(route)
                    if link.until_s == -math.inf:  # never read yet: its state at first use
                        self._read_state(link, self._now())
                self._set_constants(route)
                self._routes[(src, dst)] = route
                return route
        transport_path = None
        if links:
            forward = self._transport_route(src, dst, path)
            latency_s = forward.latency_s
            transport_path = self.transport.path(
                forward, lambda: self._transport_route(dst, src, topo.path(dst, src))
            )
        else:
            latency_s = topo.path_latency_s(path)
        route = _Route(path, tuple(links), latency_s, transport_path)
        self._routes[(src, dst)] = route
        return route

    def _link(self, u: str, v: str) -> _Link:
        link = self._links.get((u, v))
        if link is None:
            attrs = self.topology.link(u, v)
            schedule = None if self.dynamics is None else self.dynamics.schedule(u, v, attrs)
            link = _Link(len(self._link_list), attrs["bandwidth_mbps"] * BITS_PER_MEGABIT, schedule)
            if schedule is not None:
                assert self.dynamics is not None
                link.latency_s = attrs["latency_ms"] / 1e3
                link.loss = attrs.get("loss_rate", 0.0)
                key = self.dynamics.medium(u, v)
                if key is not None:
                    medium = self._media.get(key)
                    if medium is None:
                        medium = self._media[key] = _Medium()
                    link.medium = medium
            self._links[(u, v)] = link
            self._link_list.append(link)
        return link

    def _now(self) -> float:
        env = self._env
        assert env is not None  # routes are made by `carry`, which binds the clock first
        return float(env.now)

    def _transport_route(self, src: str, dst: str, path: tuple[str, ...]) -> Route:
        """The transport's view of `path` from src to dst, made once per direction (a TCP path
        needs its way back too, which is then another route's way there)."""
        found = self._transport_routes.get((src, dst))
        if found is None:
            hops = [self._hop(u, v) for u, v in itertools.pairwise(path)]
            found = Route(tuple(hops), self.topology.path_latency_s(path))
            self._transport_routes[(src, dst)] = found
        return found

    def _hop(self, u: str, v: str) -> Hop:
        """A fixed link as the transport sees it (from the topology's numbers), made once."""
        hop = self._hops.get((u, v))
        if hop is None:
            attrs = self.topology.link(u, v)
            hop = self._hops[(u, v)] = Hop(
                attrs["bandwidth_mbps"] * BITS_PER_MEGABIT,
                attrs["latency_ms"] / 1e3,
                attrs.get("loss_rate", 0.0),
            )
        return hop

    # ---------------------------------------------------------------- links that change

    def _current_route(self, path: tuple[str, ...]) -> Route:
        """The transport's view of `path` with every changing link as it is now."""
        hops = []
        latency_s = 0.0
        for u, v in itertools.pairwise(path):
            link = self._links[(u, v)]
            if link.schedule is not None:
                hop = Hop(link.capacity_bps, link.latency_s, link.loss)
            else:
                hop = self._hop(u, v)
            hops.append(hop)
            latency_s += hop.latency_s
        return Route(tuple(hops), latency_s)

    def _set_constants(self, route: _Route) -> None:
        """Compute a changing route's transport constants from its links' current states."""
        forward = self._current_route(route.path)
        back = self._current_route(route.reverse)
        route.latency_s = forward.latency_s
        route.transport_path = self.transport.path(forward, lambda: back)
        route.seen = _versions(route.watch)

    def _read_state(self, link: _Link, now: float) -> None:
        """Set a changing link to its schedule's state at `now` (no flow is told: see
        `_update_link`); its `state_version` moves when anything changed.

        A schedule says what the link is for the bits that enter it at a time (a sender's
        device sends at its new rate from the change on). A flow here transmits after its
        path's latency, on the timeline of its bits' arrival; so the link that flows see at
        `now` is the schedule's at `now` minus the link's latency, and changes reach them one
        latency after they happen."""
        schedule = link.schedule
        assert schedule is not None
        lag = link.latency_s
        state = _seen_at(schedule, now, lag)
        if state.latency_s != lag:  # the latency itself changed: read with the new one
            lag = state.latency_s
            state = _seen_at(schedule, now, lag)
        capacity = link.nominal_bps = state.capacity_bps
        if link.medium is not None:
            capacity /= link.medium.share(link)
        if (
            capacity != link.capacity_bps
            or state.latency_s != link.latency_s
            or state.loss != link.loss
        ):
            link.capacity_bps = capacity
            link.latency_s = state.latency_s
            link.loss = state.loss
            link.state_version += 1
        link.until_s = state.until_s + lag

    def _sync_route(self, route: _Route, now: float) -> None:
        """`_catch_up`, and the solve it may ask for, unless a later event of this instant will."""
        self._catch_up(route, now)
        self._flush(now)

    def _catch_up(self, route: _Route, now: float) -> None:
        """Bring a route's changing links to `now` and, if any changed, its constants; the flows
        on it and on its links get their new bounds and shares at once."""
        for link in route.watch:
            if now >= link.until_s:
                self._update_link(link, now)
        if route.seen != _versions(route.watch):
            self._retime_route(route, now, self._pending_seeds())

    def _update_link(self, link: _Link, now: float) -> None:
        """Apply the link's state at `now` to the flows crossing it: max-min shares where its
        capacity moved, and new transport bounds (RTT, loss) on the routes that depend on it."""
        old_capacity = link.capacity_bps
        old_latency, old_loss = link.latency_s, link.loss
        old_version = link.state_version
        self._read_state(link, now)
        if link.state_version != old_version:
            if link.users:
                self.link_changes_applied += 1
            # The transport's path constants move with latency and loss, and with capacity only
            # where the transport reads it (tcp's serialization times; not fluid's).
            retime = (
                link.latency_s != old_latency
                or link.loss != old_loss
                or self.transport.uses_capacity
            )
            self._link_moved(link, old_capacity, now, retime)
        self._arm_link(link, now)

    def _link_moved(
        self, link: _Link, old_capacity: float, now: float, retime: bool = True
    ) -> None:
        """A link's state changed: its flows' shares where its capacity moved, and the bounds
        of the flows on routes whose constants depend on it. A re-solve of max-min is asked
        for only where some rate may move."""
        seeds = self._pending
        asked = len(seeds)
        flows = link.flows
        if flows and link.capacity_bps != old_capacity:
            if len(flows) == 1:  # its own link: the capacity is part of its class's cap
                flow = next(iter(flows.values()))
                self._reclassify(flow, now, seeds, quiet=self.skip_unbinding_solves)
            else:
                seeds.extend(link.classes)
        if retime:
            for route in link.routes:
                if route.flows:  # the others are brought up to date when next used
                    self._retime_route(route, now, seeds)
        if len(seeds) != asked:
            self._unsolved = True

    def _free_media(self, flow: _Flow, now: float) -> None:
        """Links of a medium that a flow leaving them left idle give their time to the others."""
        for link in flow.links:
            if link.medium is not None and not link.flows and link in link.medium.busy:
                self._busy(link, False, now)

    def _busy(self, link: _Link, busy: bool, now: float) -> None:
        """A link of a medium starts or stops carrying flows: every busy member's share moves."""
        medium = link.medium
        assert medium is not None
        if busy:
            medium.busy[link] = None
        else:
            del medium.busy[link]
        n = len(medium.busy)
        for member in list(medium.busy):
            capacity = member.nominal_bps / n
            if capacity != member.capacity_bps:
                old = member.capacity_bps
                member.capacity_bps = capacity
                member.state_version += 1
                self._link_moved(member, old, now, self.transport.uses_capacity)

    def _retime_route(self, route: _Route, now: float, seeds: list[_Class]) -> None:
        self._set_constants(route)
        transport = self.transport
        path = route.transport_path
        for flow in list(route.flows.values()):
            message = flow.message
            transport.retime(message, path)
            self._retime_flow(flow, message.cap_bps, message.rtt_s, now, seeds)

    def _retime_flow(
        self, flow: _Flow, cap_bps: float, rtt_s: float, now: float, seeds: list[_Class]
    ) -> None:
        """A transmitting flow's bound is now `cap_bps` and its round trip `rtt_s`: a flow in
        slow start keeps its window and the round it is in, and doubles at the new pace."""
        cls = flow.cls
        assert cls is not None
        ramp = flow.ramp
        if ramp is not None and not ramp.exited and rtt_s != ramp.rtt_s:
            unplanned = flow.finish_v == _UNPLANNED
            if not unplanned:
                ramp.advance(now, cls.rate_bps)
            if ramp.exited:  # its plan at this rate ends here: a plain flow from now on
                assert cls.ramping is not None
                del cls.ramping[flow]
            else:
                ramp.rebase(now, rtt_s)
                if not unplanned:  # re-planned at the next re-share (its heap entry goes stale)
                    flow.finish_v = _UNPLANNED
                    cls.unplanned.append(flow)
                    seeds.append(cls)
        if cap_bps != flow.cap_bps:
            flow.cap_bps = cap_bps
            self._reclassify(flow, now, seeds)

    def _arm_link(self, link: _Link, now: float) -> None:
        """While flows depend on a changing link, a timer applies its next change when it
        comes."""
        if link.users and link.until_s < math.inf and link.timer_at != link.until_s:
            link.timer_at = link.until_s
            link.timer_token += 1
            env = self._env
            assert env is not None
            delay = link.until_s - now
            _schedule(env, _Event(self._link_cbs, (link, link.timer_token)), delay)
            t = now + delay  # the timer's time, computed as `_schedule` does
            self._timers_due[t] = self._timers_due.get(t, 0) + 1

    def _on_link_timer(self, event: _Event) -> None:
        link, token = event._value
        now = self._now()
        due = self._timers_due
        left = due[now] - 1
        if left:
            due[now] = left
        else:
            del due[now]
        if token == link.timer_token:  # (else re-armed since)
            link.timer_at = math.inf
            if link.users:  # a link nobody depends on is read when next used
                self._update_link(link, now)
        # Links that change together (steps at the same instant) cost one re-solve.
        self._flush(now)

    def _flush(self, now: float) -> None:
        """Re-solve max-min now if something asked for it and no later start, wake-up or link
        change of this instant will."""
        if (
            self._unsolved
            and now not in self._starts_due
            and self._wake_at != now
            and now not in self._timers_due
        ):
            self._reshare_pending(now)

    # ---------------------------------------------------------------- flow arrival / departure

    def _start_after_latency(self, event: _Event) -> None:
        env = self._env
        assert env is not None
        starts = self._starts_due
        now = env.now
        left = starts[now] - 1
        if left:
            starts[now] = left
        else:
            del starts[now]
        route, message, done, seen = event._value
        self._start(route, message, done, now, seen)

    def _start(self, route: _Route, message: Message, done: _Event, now: float, seen: int) -> None:
        if route.stale:  # rewired while the message waited: it goes the way there is now
            src, dst = route.path[0], route.path[-1]
            wait = self._blocked_until(src, dst) - now
            if wait > 0:
                self._start_later(route, message, done, -1, wait, now)
                return
            route = self._routes.get((src, dst)) or self._route(src, dst)
            self._rerouted[done] = route
            seen = -1
            if not route.watch:
                self.transport.retime(message, route.transport_path)
        if route.watch:
            # Links may have changed while the message waited: it starts with the bounds of now.
            self._catch_up(route, now)
            if seen != route.seen:
                self.transport.retime(message, route.transport_path)
        fid = self._next_fid
        self._next_fid = fid + 1
        size_bits = message.wire_bits
        ramp = None
        if message.window_bits > 0:
            ramp = Ramp(now, message.rtt_s, message.window_bits, message.max_window_bits, size_bits)
        flow = _Flow(fid, route, size_bits, done, now, message.cap_bps, ramp, message)
        self._attach(flow, route, size_bits, now)
        if now not in self._starts_due and self._wake_at != now and now not in self._timers_due:
            self._reshare_pending(now)  # the instant's last start, and no flow ends in it

    def _attach(self, flow: _Flow, route: _Route, remaining_bits: float, now: float) -> None:
        """Put a flow on the links of `route` with `remaining_bits` to send, in its class."""
        fid = flow.fid
        flow.route = route
        flow.links = route.links
        self._n_active += 1
        if self._n_active > self.peak_active_flows:
            self.peak_active_flows = self._n_active
        # A link going from one flow to two turns its old flow's private link into a shared one.
        moved: dict[int, _Flow] | None = None
        for link in route.links:
            flows = link.flows
            if len(flows) == 1:
                other = next(iter(flows.values()))
                if moved is None:
                    moved = {}
                moved[other.fid] = other
            flows[fid] = flow
        seeds = self._pending_seeds()
        if moved is not None:
            for other in moved.values():
                self._reclassify(other, now, seeds)
        cls = self._class_for(flow, now)
        self._join(flow, cls, remaining_bits, now)
        seeds.append(cls)
        if route.watch:
            route.flows[fid] = flow
            for link in route.watch:
                link.users += 1
                self._arm_link(link, now)
            for link in route.links:
                if link.medium is not None and link not in link.medium.busy:
                    self._busy(link, True, now)

    def _on_wake(self, event: _Event) -> None:
        token, target = event._value
        if token != self._wake_token:
            return  # an earlier wake-up replaced this one
        env = self._env
        assert env is not None  # set by `carry`, which started the flows this wake-up is for
        now = env.now
        limit = target if target > now else now  # the two differ by rounding at most
        due = self._due
        self._waking = True
        while due and due[0].t <= limit:
            entry = heappop(due)
            cls = entry.cls
            if cls.alive and entry.version == cls.version:
                self._class_due(cls, now)
        self._waking = False
        if self._unsolved and now not in self._starts_due and now not in self._timers_due:
            self._reshare_pending(now)
        while due:
            head = due[0]
            cls = head.cls
            if cls.alive and head.version == cls.version:
                self._set_wake(head.t, now)
                return
            heappop(due)
        self._wake_at = math.inf

    def _set_wake(self, t: float, now: float) -> None:
        self._wake_at = t
        self._wake_token += 1
        env = self._env
        assert env is not None
        _schedule(env, _Event(self._wake_cbs, (self._wake_token, t)), t - now if t > now else 0.0)

    def _class_due(self, cls: _Class, now: float) -> None:
        """The time `cls` was armed for has come: finish its head flow(s) or re-aim."""
        if cls.t_last_s != now:
            cls.v_bits += cls.rate_bps * (now - cls.t_last_s)
            cls.t_last_s = now
        heap = cls.heap
        while True:  # drop stale entries off the head
            mark = heap[0]
            if mark.live_in(cls):
                break
            heappop(heap)
        fv = mark.finish_v
        if mark.fid != cls.due_fid:
            # The head it was armed for left the class; aim at the new head.
            self._arm(cls, now)
            return
        # Armed for this head at this rate: by construction it is due now. Snap the clock to it so
        # rounding never leaves a sliver of bits behind.
        v = cls.v_bits
        if v < fv:
            cls.v_bits = v = fv
        limit = v + _DONE_EPS_BITS + _DONE_EPS_REL * abs(v)
        finished: list[_Flow] = []
        while heap and heap[0].finish_v <= limit:
            mark = heappop(heap)
            if mark.live_in(cls):
                flow = mark.flow
                finished.append(flow)
                flow.cls = None
        n_done = len(finished)
        cls.n -= n_done
        if cls.ramping:
            self._leave_ramps(cls, finished, now)
        seeds = self._pending_seeds()
        if cls.n == 0:
            self._drop(cls)
        else:
            cls.due_fid = -1  # its next head needs a timer even if the rate stays put
            seeds.append(cls)
        self._n_active -= n_done
        for flow in finished:
            fid = flow.fid
            for link in flow.links:
                del link.flows[fid]
            route = flow.route
            if route.watch:
                del route.flows[fid]
                for link in route.watch:
                    link.users -= 1
        for flow in finished:
            if flow.route.watch:
                self._free_media(flow, now)
        # Flows left alone on a link stop sharing it; neighbours on the freed links may speed up.
        moved: dict[int, _Flow] | None = None
        for flow in finished:
            for link in flow.links:
                flows = link.flows
                if len(flows) == 1:
                    other = next(iter(flows.values()))
                    if moved is None:
                        moved = {}
                    moved[other.fid] = other
                elif flows:
                    seeds.extend(link.classes)
        if moved is not None:
            for other in moved.values():
                self._reclassify(other, now, seeds)
        self.transfers_completed += n_done
        records = self.records
        env = self._env
        assert env is not None  # set by `carry`, which started these flows
        for flow in finished:
            if records is not None:
                records.append(
                    FlowRecord(flow.fid, flow.route.path, flow.size_bits, flow.t_start_s, now)
                )
            # The value is the flow's window by now, which a persistent connection keeps.
            ramp = flow.ramp
            done = flow.done  # triggered now, as `Event.succeed` does
            done._value = 0.0 if ramp is None else ramp.window_after()
            _schedule(env, done, 0.0)

    # ---------------------------------------------------------------- rewiring (handovers)

    def rewire(
        self,
        node: str,
        remove: list[tuple[str, str]],
        add: list[tuple[str, str, dict[str, float]]],
        interruption_s: float,
    ) -> None:
        """Move `node`'s links now (a handover): the links in `remove` go, those in `add` come
        (with their attributes). Flows crossing a removed link keep what they have sent, pause
        for `interruption_s` and go on over their new path, as do messages still on their way to
        their first link; new messages to or from `node` wait until the interruption ends."""
        env = self._env
        if env is None:  # no transfer yet: nothing moves but the topology
            self.topology.rewire(remove, add)
            self._routes.clear()
            self._transport_routes.clear()
            return
        now = float(env.now)
        paused: dict[int, _Flow] = {}
        for key in remove:
            link = self._links.get(key)
            if link is not None:
                paused.update(link.flows)
        held: list[tuple[_Flow, float]] = []
        seeds = self._pending_seeds()
        for fid in sorted(paused):
            flow = paused[fid]
            held.append((flow, self._detach(flow, now, seeds)))
        self.topology.rewire(remove, add)
        for key, route in list(self._routes.items()):
            if node in route.path or node in route.reverse:
                route.stale = True
                del self._routes[key]
        self._transport_routes.clear()
        for u, v, attrs in add:
            self._hops.pop((u, v), None)
            link = self._links.get((u, v))
            if link is not None and link.schedule is None:  # back again, maybe as another link
                link.capacity_bps = attrs["bandwidth_mbps"] * BITS_PER_MEGABIT
        for u, v in remove:
            self._hops.pop((u, v), None)
        until = now + interruption_s
        if until > self._blocked.get(node, -math.inf):
            self._blocked[node] = until
        self._flush(now)
        if held:
            self.flows_rerouted += len(held)
            _schedule(env, _Event(self._resume_cbs, (held, now)), interruption_s)

    def _blocked_until(self, src: str, dst: str) -> float:
        blocked = self._blocked
        a = blocked.get(src, -math.inf)
        b = blocked.get(dst, -math.inf)
        return a if a > b else b

    def _start_later(
        self, route: _Route, message: Message, done: _Event, seen: int, delay: float, now: float
    ) -> None:
        """Queue a message's transmission `delay` seconds from now (counted among the instant's
        starts, which solve max-min once)."""
        env = self._env
        assert env is not None
        _schedule(env, _Event(self._start_cbs, (route, message, done, seen)), delay)
        t = now + delay  # the timer's time, computed as `_schedule` does
        starts = self._starts_due
        starts[t] = starts.get(t, 0) + 1

    def _detach(self, flow: _Flow, now: float, seeds: list[_Class]) -> float:
        """Take a transmitting flow off its links and class; returns the bits it has left."""
        cls = flow.cls
        assert cls is not None
        remaining = self._leave(flow, cls, now)
        flow.cls = None
        if cls.n == 0:
            self._drop(cls)
        else:
            seeds.append(cls)
        fid = flow.fid
        for link in flow.links:
            del link.flows[fid]
        moved: dict[int, _Flow] = {}
        for link in flow.links:
            flows = link.flows
            if len(flows) == 1:
                other = next(iter(flows.values()))
                moved[other.fid] = other
            elif flows:
                seeds.extend(link.classes)
        for other in moved.values():
            self._reclassify(other, now, seeds)
        route = flow.route
        if route.watch:
            del route.flows[fid]
            for link in route.watch:
                link.users -= 1
            self._free_media(flow, now)
        self._n_active -= 1
        return remaining if remaining > 0.0 else 0.0

    def _resume(self, event: _Event) -> None:
        """The interruption is over: paused flows go on over the paths there are now."""
        held, since = event._value
        now = self._now()
        transport = self.transport
        for flow, remaining in held:
            src, dst = flow.route.path[0], flow.route.path[-1]
            route = self._routes.get((src, dst)) or self._route(src, dst)
            if route.watch:
                self._sync_route(route, now)
            message = flow.message
            transport.retime(message, route.transport_path)
            flow.cap_bps = message.cap_bps
            ramp = flow.ramp
            if ramp is not None and not ramp.exited:
                ramp.shift(now - since)  # its round resumes where it paused
                ramp.rebase(now, message.rtt_s)
            self._rerouted[flow.done] = route
            self._attach(flow, route, remaining, now)
        self._flush(now)

    # ---------------------------------------------------------------- classes

    def _class_for(self, flow: _Flow, now: float) -> _Class:
        shared: list[_Link] = []
        cap = flow.cap_bps
        for link in flow.links:
            if len(link.flows) > 1:
                shared.append(link)
            elif link.capacity_bps < cap:
                cap = link.capacity_bps
        flow.own_cap = cap
        group = self.group_classes and bool(shared)
        if group:
            cap = math.inf
        if not shared:
            key: tuple[tuple[int, ...], float] = ((), cap)
        elif len(shared) == 1:
            key = (shared[0].key, cap)
        else:
            shared.sort(key=_link_index)
            key = (tuple([link.index for link in shared]), cap)
        return self._class_of(key, tuple(shared), now, group)

    def _class_of(
        self, key: tuple[tuple[int, ...], float], shared: tuple[_Link, ...], now: float, group: bool
    ) -> _Class:
        cls = self._classes.get(key)
        if cls is None:
            cls = _Class(key, shared, now)
            cls.group = group
            self._classes[key] = cls
            for link in shared:
                link.classes[cls] = None
        return cls

    @staticmethod
    def _join(flow: _Flow, cls: _Class, remaining_bits: float, now: float) -> None:
        if cls.t_last_s != now:
            cls.v_bits += cls.rate_bps * (now - cls.t_last_s)
            cls.t_last_s = now
        flow.cls = cls
        cls.n += 1
        if cls.group:
            heappush(cls.caps, _CapMark(flow.own_cap, flow.fid, flow))
        ramp = flow.ramp
        if ramp is not None and not ramp.exited:
            # Its pauses depend on the rate the re-share that follows gives it: planned there.
            if cls.ramping is None:
                cls.ramping = {}
            cls.ramping[flow] = None
            cls.unplanned.append(flow)
            flow.finish_v = _UNPLANNED
            return
        flow.finish_v = fv = cls.v_bits + remaining_bits
        heap = cls.heap
        heappush(heap, _Mark(fv, flow.fid, flow))
        if heap[0].flow is flow:
            cls.due_fid = -1  # a new head: the class's timer must be re-armed

    def _reclassify(
        self, flow: _Flow, now: float, seeds: list[_Class], quiet: bool = False
    ) -> None:
        """Put a flow in the class its links and cap call for now. In a group its own cap may
        move: `quiet` asks no solve where the new cap is still at least the group's rate (a
        group's rate is set by a shared link, and a constraint that does not bind leaves a
        max-min allocation as it is; fading links behind a crowded backhaul change that way all
        the time)."""
        old = flow.cls
        assert old is not None
        old_cap = flow.own_cap
        new = self._class_for(flow, now)
        if new is old:
            if old.group and flow.own_cap != old_cap:  # its cap in the group moved
                heappush(old.caps, _CapMark(flow.own_cap, flow.fid, flow))
                # (A rate of 0 is a group made this instant, not yet solved.)
                if not (quiet and flow.own_cap >= old.rate_bps > 0.0):
                    seeds.append(old)
            return
        remaining = self._leave(flow, old, now)
        if old.n == 0:
            self._drop(old)
        else:
            seeds.append(old)
        self._join(flow, new, remaining, now)
        seeds.append(new)

    def _leave(self, flow: _Flow, cls: _Class, now: float) -> float:
        """Take a flow out of its class at `now`; returns the bits it has left to send. Its heap
        entry goes stale (the caller points `flow.cls` elsewhere); an empty class is the
        caller's to drop."""
        self._advance(cls, now)
        remaining = flow.finish_v - cls.v_bits
        ramp = flow.ramp
        if ramp is not None and not ramp.exited:
            assert cls.ramping is not None  # a ramping flow is listed in its class's `ramping`
            del cls.ramping[flow]
            if flow.finish_v == _UNPLANNED:  # joined this instant: nothing sent, nothing planned
                cls.unplanned.remove(flow)
            else:
                ramp.advance(now, cls.rate_bps)
            if not ramp.exited:
                remaining = ramp.left
        cls.n -= 1
        return remaining

    def _drop(self, cls: _Class) -> None:
        cls.alive = False
        del self._classes[cls.key]
        for link in cls.links:
            del link.classes[cls]

    @staticmethod
    def _plan_ramps(cls: _Class, rate: float, now: float) -> None:
        """Plan the pauses of the class's members in slow start at its new rate `rate`: those that
        just joined, and, if the rate moves, the others (brought to now at the old rate first).
        Members whose plan ran out of pauses leave the set as plain flows."""
        old_rate = cls.rate_bps
        ramping = cls.ramping
        assert ramping is not None
        todo = list(ramping) if old_rate != rate else cls.unplanned
        if cls.unplanned:
            cls.unplanned = []
        heap = cls.heap
        for flow in todo:
            ramp = flow.ramp
            assert ramp is not None
            if flow.finish_v != _UNPLANNED:
                ramp.advance(now, old_rate)
                if ramp.exited:
                    del ramping[flow]
                    continue
            # A flow whose window already fills a round at this rate stays listed: it leaves
            # slow start at its next advance, once time has passed at this rate.
            pause = ramp.plan(rate)
            fv = cls.v_bits + ramp.left + rate * pause
            if fv != flow.finish_v:
                flow.finish_v = fv
                heappush(heap, _Mark(fv, flow.fid, flow))
                if heap[0].flow is flow:
                    cls.due_fid = -1

    @staticmethod
    def _leave_ramps(cls: _Class, finished: list[_Flow], now: float) -> None:
        """Finished flows leave the class's slow-start set, their state brought to now."""
        ramping = cls.ramping
        assert ramping is not None
        for flow in finished:
            ramp = flow.ramp
            if ramp is not None and not ramp.exited:
                del ramping[flow]
                ramp.advance(now, cls.rate_bps)

    @staticmethod
    def _advance(cls: _Class, now: float) -> None:
        if cls.t_last_s != now:
            cls.v_bits += cls.rate_bps * (now - cls.t_last_s)
            cls.t_last_s = now

    def _arm(self, cls: _Class, now: float) -> None:
        """Queue `cls`'s next completion in the network's due heap (and SimPy's wake-up)."""
        heap = cls.heap
        while True:  # drop stale entries off the head
            mark = heap[0]
            if mark.live_in(cls):
                break
            heappop(heap)
        cls.version += 1
        cls.due_fid = mark.fid
        delay = (mark.finish_v - cls.v_bits) / cls.rate_bps
        t = now + delay if delay > 0 else now
        self._due_seq += 1
        heappush(self._due, _Due(t, self._due_seq, cls, cls.version))
        if t < self._wake_at and not self._waking:
            self._set_wake(t, now)

    # ---------------------------------------------------------------- max-min

    def _pending_seeds(self) -> list[_Class]:
        """The list to put classes in whose rates a start or end may have moved. Max-min is
        re-solved once per simulated instant, by the last start or wake-up of that instant the
        network knows of: flows that start or end together (a round's downloads, an exchange's
        equal transfers) cost one solve, not one each. (A zero-delay transfer started later in
        the same instant re-solves again; rates that last no time have no lasting effect.)"""
        self._unsolved = True
        return self._pending

    def _reshare_pending(self, now: float) -> None:
        self._unsolved = False
        seeds = self._pending  # may be empty: the flows that ended shared nothing
        self._reshare(seeds, now)  # which never asks for `_pending_seeds`
        seeds.clear()

    def _reshare(self, seeds: list[_Class], now: float) -> None:
        """Re-solve max-min over the classes linked to `seeds` by shared links; re-arm timers."""
        if seeds:
            cls = seeds[0]
            for other in seeds:
                if other is not cls:
                    break
            else:
                if cls.alive:
                    self._reshare_one(cls, now)
                    return
        self._reshare_component(seeds, now)

    def _reshare_one(self, cls: _Class, now: float) -> None:
        """`_reshare` for one live seed class; the fast path when that class shares its links with
        no other class (a busy cell's uploads, a flow alone on its links)."""
        rate = cls.cap_bps
        for link in cls.links:
            if len(link.classes) != 1:
                self._reshare_component([cls], now)
                return
            fair = link.capacity_bps / len(link.flows)
            if fair < rate:
                rate = fair
        if cls.group and _least_cap(cls) < rate:  # a member's own cap binds: split it off
            self._reshare_component([cls], now)
            return
        self._set_rate(cls, rate, now)
        if self.history is not None:
            self.history.append((now, self.rates()))

    def _reshare_component(self, seeds: list[_Class], now: float) -> None:
        for cls in self._component(seeds, now):
            if cls.alive:  # (a group whose members were all split off is gone)
                self._set_rate(cls, cls.new_rate_bps, now)
        if self.history is not None:
            self.history.append((now, self.rates()))

    def _set_rate(self, cls: _Class, rate: float, now: float) -> None:
        """Give `cls` its new max-min rate: re-plan its slow starts and re-arm its timer as due."""
        if rate != cls.rate_bps:
            if cls.t_last_s != now:
                cls.v_bits += cls.rate_bps * (now - cls.t_last_s)
                cls.t_last_s = now
            if cls.ramping:
                self._plan_ramps(cls, rate, now)
            cls.rate_bps = rate
            self._arm(cls, now)
        else:
            if cls.unplanned:
                self._plan_ramps(cls, rate, now)
            if cls.due_fid == -1:
                self._arm(cls, now)

    def _component(self, seeds: list[_Class], now: float) -> list[_Class]:
        """The classes connected to `seeds` through shared links, with their new max-min rates."""
        self._epoch += 1
        epoch = self._epoch
        comp: list[_Class] = []
        comp_links: list[_Link] = []
        stack = []
        for cls in seeds:
            if cls.alive and cls.mark != epoch:
                cls.mark = epoch
                stack.append(cls)
        while stack:
            cls = stack.pop()
            comp.append(cls)
            for link in cls.links:
                if link.mark != epoch:
                    link.mark = epoch
                    comp_links.append(link)
                    for other in link.classes:
                        if other.mark != epoch:
                            other.mark = epoch
                            stack.append(other)
        if not comp_links:  # nothing shared: every class runs at its own cap
            for cls in comp:
                cls.new_rate_bps = cls.cap_bps
            return comp
        if len(comp) == 1:  # one class owns every shared link here
            cls = comp[0]
            rate = cls.cap_bps
            for link in cls.links:
                fair = link.capacity_bps / len(link.flows)
                if fair < rate:
                    rate = fair
            if not cls.group or _least_cap(cls) >= rate:
                cls.new_rate_bps = rate
                return comp
        if self.group_classes:
            self._water_fill_groups(comp, comp_links, now)
        else:
            _water_fill(comp, comp_links)
        return comp

    def _water_fill_groups(self, classes: list[_Class], links: list[_Link], now: float) -> None:
        """`_water_fill` where classes may be groups: a group's cap is its least member's own,
        and when the level reaches it those members leave the group for a class capped there
        (frozen at it as any capped class is) while the group rises on. `classes` grows by the
        capped classes this makes; a group left empty is dropped."""
        link_heap = _shares_of(links)
        cap_heap: list[_Cap] = []
        for pos, cls in enumerate(classes):
            cls.pos = pos
            cls.frozen = False
            cap_heap.append(_Cap(_least_cap(cls), pos, cls))
        heapify(cap_heap)
        left = len(classes)
        while left:
            level, tight = _tightest(link_heap)
            while True:  # drop entries of frozen classes and of groups whose least cap moved
                head = cap_heap[0]
                c = head.cls
                if c.frozen or (c.group and head.cap != _least_cap(c)):
                    heappop(cap_heap)
                    continue
                break
            capped: _Class | None = None
            lowest = cap_heap[0]
            if lowest.cap < level:
                level, capped = lowest.cap, lowest.cls
            if capped is not None and capped.group:
                target, moved = self._split(capped, level, now)
                if target.pos >= len(classes) or classes[target.pos] is not target:
                    target.pos = len(classes)  # new to this solve: frozen at its cap below
                    target.frozen = False
                    classes.append(target)
                    left += 1
                    heappush(cap_heap, _Cap(target.cap_bps, target.pos, target))
                elif target.frozen:  # frozen at this very level already: count the newcomers
                    touched_links: dict[_Link, None] = {}
                    for link in target.links:
                        link.residual_bps -= moved * level
                        link.unfrozen -= moved
                        touched_links[link] = None
                    _reshare_links(touched_links, link_heap)
                if capped.n == 0:
                    capped.frozen = True
                    left -= 1
                else:
                    heappush(cap_heap, _Cap(_least_cap(capped), capped.pos, capped))
                continue
            left -= _freeze(capped, tight, level, link_heap)
        self._merge_unbound(classes, now)

    def _merge_unbound(self, classes: list[_Class], now: float) -> None:
        """Capped classes whose cap no longer binds (a shared link froze them below it) go back
        into the group of their links: frozen by the same link at the same level, they have the
        group's rate; fewer classes make every later solve cheaper."""
        for cls in list(classes):
            if cls.group or not cls.links or not cls.alive or cls.new_rate_bps >= cls.cap_bps:
                continue
            group = self._class_of((cls.key[0], math.inf), cls.links, now, True)
            if group.pos >= len(classes) or classes[group.pos] is not group:
                group.pos = len(classes)  # new to this solve (or not in it yet)
                group.frozen = True
                group.new_rate_bps = cls.new_rate_bps
                classes.append(group)
            members = {m.fid: m.flow for m in cls.heap if m.live_in(cls)}
            for flow in cls.unplanned:
                members[flow.fid] = flow
            for fid in sorted(members):
                self._move(members[fid], cls, group, now)
            if cls.n == 0:
                self._drop(cls)

    def _split(self, group: _Class, level: float, now: float) -> tuple[_Class, int]:
        """Move the members of `group` whose own cap is `level` (its least) to the class of its
        links capped at `level`; returns that class and how many moved."""
        target = self._class_of((group.key[0], level), group.links, now, False)
        caps = group.caps
        moved = 0
        while caps:
            head = caps[0]
            if not head.live_in(group):
                heappop(caps)
                continue
            if head.cap > level:
                break
            heappop(caps)
            self._move(head.flow, group, target, now)
            moved += 1
        if group.n == 0:
            self._drop(group)
        return target, moved

    def _move(self, flow: _Flow, old: _Class, new: _Class, now: float) -> None:
        """A flow leaves class `old` for `new` at `now`, with what it has left to send (no
        re-solve asked: the caller is solving)."""
        self._join(flow, new, self._leave(flow, old, now), now)


def _seen_at(schedule: LinkSchedule, now: float, lag: float) -> LinkState:
    """The schedule's state that flows meet at `now` on a link of latency `lag`: the state at
    now - lag, read on to the next step where rounding in now - lag lands just before a step
    the flows have reached (its end would be now, and the link's timer would never move on)."""
    state = schedule.state_at(now - lag)
    while state.until_s + lag <= now:
        state = schedule.state_at(state.until_s)
    return state


def _versions(links: tuple[_Link, ...]) -> int:
    """The sum of the links' state versions: it moves whenever any of them changed."""
    total = 0
    for link in links:
        total += link.state_version
    return total


def _shares_of(links: list[_Link]) -> list[_Share]:
    """Water-filling's start: every link's whole capacity among all its flows."""
    heap: list[_Share] = []
    for pos, link in enumerate(links):
        link.residual_bps = link.capacity_bps
        link.unfrozen = n = len(link.flows)
        link.pos = pos
        link.version = 0
        heap.append(_Share(link.residual_bps / n, pos, 0, link))
    heapify(heap)
    return heap


def _tightest(link_heap: list[_Share]) -> tuple[float, _Link | None]:
    """The least fair share of a link with unfrozen flows (stale entries dropped)."""
    while link_heap:
        head = link_heap[0]
        link = head.link
        if head.version == link.version and link.unfrozen > 0:
            return head.share, link
        heappop(link_heap)  # stale: the link's share moved or it is full
    return math.inf, None


def _reshare_links(touched: dict[_Link, None], link_heap: list[_Share]) -> None:
    for link in touched:
        if link.unfrozen > 0:
            link.version += 1
            heappush(
                link_heap, _Share(link.residual_bps / link.unfrozen, link.pos, link.version, link)
            )


def _link_index(link: _Link) -> int:
    return link.index


def _water_fill(classes: list[_Class], links: list[_Link]) -> None:
    """Progressive filling: raise every unfrozen class's rate together; freeze the classes of the
    first link to saturate (or a class reaching its cap); repeat. Sets `new_rate_bps`.

    The tightest link and the least cap come from heaps (ties to the earlier link or class in the
    lists given), and a saturated link's classes from its own class set, so a step costs the
    links it touches, not a scan of every link and class: a component with thousands of classes
    and dozens of distinct levels (an all-to-all exchange) is solved in O((L + C k) log L)."""
    link_heap = _shares_of(links)
    cap_heap: list[_Cap] = []
    for pos, cls in enumerate(classes):
        cls.pos = pos
        cls.frozen = False
        cap_heap.append(_Cap(cls.cap_bps, pos, cls))
    heapify(cap_heap)
    left = len(classes)
    while left:
        level, tight = _tightest(link_heap)
        while cap_heap[0].cls.frozen:
            heappop(cap_heap)
        capped: _Class | None = None
        lowest = cap_heap[0]
        if lowest.cap < level:
            level, capped = lowest.cap, lowest.cls
        left -= _freeze(capped, tight, level, link_heap)


def _freeze(
    capped: _Class | None, tight: _Link | None, level: float, link_heap: list[_Share]
) -> int:
    """One step of water-filling at `level`: freeze the class that reached its cap, else the
    classes of the link that saturated; returns how many froze."""
    if level < 0.0:
        level = 0.0  # rounding in the residuals; positive capacities cannot need it
    if capped is not None:
        frozen = [capped]
    elif tight is not None:
        frozen = [c for c in tight.classes if not c.frozen]
        frozen.sort(key=_class_pos)  # the order the residuals are reduced in, as listed
    else:
        frozen = []
    if not frozen:  # cannot happen while link flow counts are consistent; never spin
        raise RuntimeError("max-min water-filling made no progress: inconsistent link state")
    touched: dict[_Link, None] = {}
    for cls in frozen:
        cls.frozen = True
        cls.new_rate_bps = level
        n = cls.n
        for link in cls.links:
            link.residual_bps -= n * level
            link.unfrozen -= n
            touched[link] = None
    _reshare_links(touched, link_heap)
    return len(frozen)


def _class_pos(cls: _Class) -> int:
    return cls.pos
