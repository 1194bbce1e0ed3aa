"""Synchronous federated rounds: broadcast, local work, upload, then the server rule folds the
kept uploads in (FedAvg's weighted mean by default).

A round may select a subset of clients, over-select and keep the first K uploads, and close at a
deadline. Every dispatched client update ends in exactly one `UpdateRecord` (applied or dropped,
with its reason), and every round in one `RoundRecord`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy
from simpy.events import NORMAL, Event, EventPriority

from nmoe_sim.federation.aggregate import Weights
from nmoe_sim.federation.rules import ServerRule, WeightedMean
from nmoe_sim.learning.client import Update
from nmoe_sim.network.devices import SERVER, TaskDropped, client_node
from nmoe_sim.telemetry.schema import RoundRecord, UpdateRecord
from nmoe_sim.world import World

# What a client computes, as drivers ask it: (client, weights received or None, round or step)
# -> (FLOPs of the work, the task function, its arguments after the client state).
LocalPlan = Callable[
    [int, Weights | None, int], tuple[float, Callable[..., Update], tuple[Any, ...]]
]
# Called once per round (or, for the asynchronous drivers, once per round's worth of updates):
# (round index, global weights now, the updates applied since the previous call).
RoundCallback = Callable[[int, Weights, list[Update]], None]

# SimPy orders its queue by (time, priority, id): an event of this priority is processed after
# every ordinary event due at the same instant, including those scheduled while processing them.
_AFTER_ORDINARY = EventPriority(NORMAL + 1)


def identity(weights: Weights) -> Weights:
    return weights


class StalenessStamp:
    """An update's staleness, measured once when its upload lands.

    The channel asks it when it writes the trace row; the server asks it again when it handles
    the arrival. Both see the same value even when another upload landing at the same instant
    is handled in between.
    """

    def __init__(self, measure: Callable[[], int]) -> None:
        self._measure = measure
        self._value: int | None = None

    def __call__(self) -> int:
        if self._value is None:
            self._value = self._measure()
        return self._value


class _LastAtInstant(Event):
    """A timeout that fires after everything else due at its instant, so an upload arriving
    exactly at a deadline counts as in time whatever order its events were created in."""

    def __init__(self, env: simpy.Environment, delay: float) -> None:
        super().__init__(env)
        # Triggered at creation, as simpy.Timeout does, only with a later priority.
        self._ok = True
        self._value = None
        env.schedule(self, _AFTER_ORDINARY, delay)


@dataclass(frozen=True)
class SyncSettings:
    """Who works in a round and when it closes.

    `clients_per_round` (K, None = every client) uploads are aggregated per round; with
    `over_selection` x the server selects ceil(K (1 + x)) clients and keeps the first K uploads
    to arrive; with `deadline_s` uploads arriving later than round start + deadline are dropped
    (arriving exactly at it counts as in time).
    """

    clients_per_round: int | None = None
    over_selection: float = 0.0
    deadline_s: float | None = None

    def __post_init__(self) -> None:
        if self.clients_per_round is not None and self.clients_per_round < 1:
            raise ValueError(f"clients_per_round must be >= 1 (got {self.clients_per_round})")
        if self.over_selection < 0:
            raise ValueError(f"over_selection must be >= 0 (got {self.over_selection})")
        if self.deadline_s is not None and not self.deadline_s > 0:
            raise ValueError(f"deadline_s must be > 0 (got {self.deadline_s})")

    def quorum(self, num_clients: int) -> int:
        """K: the uploads a round aggregates at most."""
        k = num_clients if self.clients_per_round is None else self.clients_per_round
        if k > num_clients:
            raise ValueError(f"clients_per_round={k} exceeds the {num_clients} clients")
        return k

    def selected(self, num_clients: int) -> int:
        """How many clients a round asks: ceil(K (1 + x)), at most every client."""
        # The small slack keeps e.g. 10 * 1.1 = 11.000000000000002 from rounding up to 12.
        wanted = math.ceil(self.quorum(num_clients) * (1.0 + self.over_selection) - 1e-9)
        return min(num_clients, wanted)


def final_broadcast(
    world: World, *, stage: str, client_ids: Sequence[int], weights: Weights, round: int
) -> Generator[Any, Any, None]:
    """The server sends the final weights to every client; done when all have them."""
    sends = [
        world.channel.send(
            SERVER, client_node(c), weights, kind="model_down", stage=stage, round=round
        )
        for c in client_ids
    ]
    yield world.env.all_of(sends)


class _Round:
    """One round's bookkeeping on the server: who was asked, who answered in time, when and why
    the round closed. The server only learns things when arrival (or task-loss) events fire."""

    def __init__(
        self,
        world: World,
        stage: str,
        r: int,
        selected: list[int],
        quorum: int,
        server: _Server,
        rule: ServerRule,
    ) -> None:
        self.world, self.stage, self.r, self.server = world, stage, r, server
        # The rule's version every selected client starts from, held until its update is
        # applied or dropped.
        self.rule, self.base = rule, rule.version
        for _ in selected:
            rule.hold(self.base)
        self.t_start = world.env.now
        self.selected = selected
        self.quorum = min(quorum, len(selected))
        # Dispatched updates not yet recorded, in selection order (dicts keep insertion order).
        self.pending: dict[int, None] = dict.fromkeys(selected)
        self.applied: dict[int, Update] = {}
        self.open = True
        self.closed_by = ""
        self.closed = world.env.event()

    def watch_deadline(self, deadline_s: float) -> None:
        _LastAtInstant(self.world.env, deadline_s).callbacks.append(self._on_deadline)

    def _on_deadline(self, _: Event) -> None:
        if self.open:
            self._close("deadline")

    def _close(self, how: str) -> None:
        self.open = False
        self.closed_by = how
        self.server.version += 1  # late arrivals from now on are one round (or more) stale
        self.closed.succeed()

    def stamp(self) -> StalenessStamp:
        return StalenessStamp(lambda: self.server.version - self.r)

    def _record(
        self, cid: int, t_arrival: float | None, staleness: int | None, reason: str
    ) -> None:
        if reason:
            self.rule.release(self.base)
        self.world.log.record_update(
            UpdateRecord(
                client=cid,
                stage=self.stage,
                round=self.r,
                t_dispatch_s=self.t_start,
                t_arrival_s=t_arrival,
                staleness=staleness,
                status="dropped" if reason else "applied",
                reason=reason,
            )
        )

    def arrive(self, cid: int, update: Update, staleness: int) -> None:
        if cid not in self.pending:  # already written off when the driver finished
            return
        del self.pending[cid]
        now = self.world.env.now
        if not self.open:
            # Still in flight when the round closed: it was sent, but nobody waits for it.
            late = "late" if self.closed_by == "deadline" else "over_selected"
            self._record(cid, now, staleness, late)
            return
        self.applied[cid] = update
        self._record(cid, now, staleness, "")
        if not self.pending:
            self._close("all")
        elif len(self.applied) == self.quorum:
            self._close("quorum")

    def lost(self, cid: int, reason: str) -> None:
        """The client's task was lost on its device; the server is told when that happens."""
        if cid not in self.pending:
            return
        del self.pending[cid]
        self._record(cid, None, None, reason)
        if self.open and not self.pending:
            self._close("all")

    def write_off(self) -> None:
        """The driver is done: updates still in flight are recorded as never received."""
        late = "late" if self.closed_by == "deadline" else "over_selected"
        for cid in list(self.pending):
            del self.pending[cid]
            self._record(cid, None, None, late)


def _select(clients: list[int], n: int, rng: np.random.Generator | None) -> list[int]:
    """`n` distinct clients drawn by `rng`, back in `clients` order (the dispatch order, which
    breaks ties in simulated time); all of them, drawing nothing, when `n` covers everyone."""
    if n == len(clients):
        return clients
    if rng is None:
        raise ValueError("selecting a subset of clients needs an rng")
    picked = rng.choice(len(clients), size=n, replace=False)
    return [clients[i] for i in sorted(picked.tolist())]


@dataclass
class _Server:
    version: int = 0  # rounds closed so far


def sync_rounds(
    world: World,
    *,
    stage: str,
    rounds: int,
    client_ids: Sequence[int],
    plan: LocalPlan,
    on_round: RoundCallback,
    initial: Weights | None = None,
    rule: ServerRule | None = None,
    share: Callable[[Weights], Weights] = identity,
    settings: SyncSettings | None = None,
    rng: np.random.Generator | None = None,
) -> Generator[Any, Any, Weights]:
    """Every round the selected clients download the global weights, run `plan`'s task and
    upload `share(update)`; when the round closes the server applies the uploads it kept to
    `rule`, in selection order, and flushes it. Give `rule` or `initial`: the default rule is
    FedAvg's `WeightedMean(initial)` (the uploads' mean weighted by sample count).

    A round closes when K uploads are in, at the deadline, or when every selected client has
    answered (or lost its task), whichever comes first; uploads still in flight are not waited
    for and are recorded as dropped when they arrive. A round with no upload leaves the global
    model unchanged (`on_round` gets an empty list). After the last round the server sends the
    final weights to every client; returns them.

    `rng` draws the selected clients (sorted back into `client_ids` order); it is needed only
    when a round selects fewer than all clients. Default settings: every client, every round,
    the round ends with the slowest one.
    """
    if rule is None:
        if initial is None:
            raise ValueError("sync_rounds needs a rule or the initial weights")
        rule = WeightedMean(initial)
    elif initial is not None:
        raise ValueError("sync_rounds takes a rule or the initial weights, not both")
    settings = settings or SyncSettings()
    clients = list(client_ids)
    quorum = settings.quorum(len(clients))
    n_select = settings.selected(len(clients))
    if n_select < len(clients) and rng is None:  # refuse before any simulated work
        raise ValueError("selecting a subset of clients needs an rng")
    server = _Server()
    rounds_seen: list[_Round] = []

    def one_client(cid: int, rnd: _Round, weights: Weights) -> Generator[Any, Any, None]:
        node = client_node(cid)
        received = yield world.channel.send(
            SERVER, node, weights, kind="model_down", stage=stage, round=rnd.r
        )
        flops, fn, args = plan(cid, received, rnd.r)
        try:
            update: Update = yield from world.client_work(cid, flops, fn, *args, may_drop=True)
        except TaskDropped as lost:
            rnd.lost(cid, lost.reason)
            return
        shared = share(update.weights)
        stamp = rnd.stamp()
        yield world.channel.send(
            node, SERVER, shared, kind="update_up", stage=stage, round=rnd.r, staleness=stamp
        )
        rnd.arrive(cid, Update(shared, update.num_samples, update.loss), stamp())

    for r in range(rounds):
        selected = _select(clients, n_select, rng)
        rnd = _Round(world, stage, r, selected, quorum, server, rule)
        rounds_seen = [seen for seen in rounds_seen if seen.pending] + [rnd]
        if settings.deadline_s is not None:
            rnd.watch_deadline(settings.deadline_s)
        for cid in selected:
            world.env.process(one_client(cid, rnd, rule.weights))
        yield rnd.closed
        updates = [rnd.applied[c] for c in selected if c in rnd.applied]
        for update in updates:
            rule.apply(update, rnd.base, 0)  # kept uploads landed in their own round: never stale
        rule.flush()
        world.log.record_round(
            RoundRecord(
                stage=stage,
                round=r,
                t_start_s=rnd.t_start,
                t_end_s=world.env.now,
                selected=len(selected),
                applied=len(updates),
                closed_by=rnd.closed_by,
            )
        )
        on_round(r, rule.weights, updates)
    yield from final_broadcast(
        world, stage=stage, client_ids=clients, weights=rule.weights, round=rounds
    )
    for rnd in rounds_seen:
        rnd.write_off()
    return rule.weights
