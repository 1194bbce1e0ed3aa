"""Asynchronous federation: FedAsync (staleness-weighted mixing) and FedBuff (buffered deltas).

Both share one driver loop: `concurrency` clients train at once; each downloads the server's
current model (noting its version), runs `plan`'s task and uploads `share(weights)`. The server
acts only when an upload lands (or a client's task is reported lost: "dropout"): it measures the
update's staleness (server version now minus the version the client started from), drops it if
staler than `max_staleness`, otherwise hands it to the aggregation rule; then it dispatches the
next client, drawn by `rng` among the idle ones, until `total_updates` have been dispatched. The
run ends when every dispatched update has been applied or dropped; the server then broadcasts
the final model to every client.

Pacing: `on_round(step, weights, applied updates)` and `world.progress.advance()` run once per
`updates_per_round` (default: the number of clients) resolved (applied or dropped) updates, and
once more for a remainder, so `total_updates = rounds * K` with `updates_per_round = K` advances
exactly `rounds` times, as `sync_rounds` does with K clients per round.

`plan`'s third argument is the dispatch index (0, 1, ...): unique per task, so per-task seeds
never repeat even when a client starts twice from the same version.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Generator, Sequence
from typing import Protocol

import numpy as np
import torch

from nmoe_sim.federation.aggregate import Weights, weighted_average
from nmoe_sim.federation.staleness import StalenessFn, constant
from nmoe_sim.federation.sync import (
    LocalPlan,
    RoundCallback,
    StalenessStamp,
    final_broadcast,
    identity,
)
from nmoe_sim.learning.client import Update
from nmoe_sim.network.devices import SERVER, TaskDropped, client_node
from nmoe_sim.telemetry.records import UpdateRecord
from nmoe_sim.world import World


class _ServerRule(Protocol):
    """How the server folds arriving updates into its model."""

    weights: Weights
    version: int

    def hold(self, version: int) -> None:
        """A client starts from `version`."""

    def release(self, version: int) -> None:
        """An update started from `version` was dropped."""

    def apply(self, update: Update, version: int, staleness: int) -> None: ...

    def drain(self) -> None:
        """No update will arrive any more."""


def mix(server: Weights, client: Weights, alpha: float) -> Weights:
    """(1 - alpha) * server + alpha * client: FedAvg's weighted mean of the two (integer buffers
    keep the server's value)."""
    return weighted_average([server, client], [1.0 - alpha, alpha])


class _Mixing:
    """FedAsync: w <- (1 - a_s) w + a_s w_client, a_s = alpha * staleness_fn(s)."""

    def __init__(self, initial: Weights, alpha: float, staleness_fn: StalenessFn) -> None:
        self.weights = initial
        self.version = 0
        self.alpha = alpha
        self.staleness_fn = staleness_fn

    def hold(self, version: int) -> None:
        pass

    def release(self, version: int) -> None:
        pass

    def apply(self, update: Update, version: int, staleness: int) -> None:
        self.weights = mix(self.weights, update.weights, self.alpha * self.staleness_fn(staleness))
        self.version += 1

    def drain(self) -> None:
        pass


class _Buffered:
    """FedBuff: buffer each client's delta against the model it started from; every
    `buffer_size` deltas, w <- w + server_lr * sum_i n_i f(s_i) delta_i / sum_i n_i.

    Keeps only the versions some client in flight started from (plus the current one).
    """

    def __init__(
        self, initial: Weights, buffer_size: int, server_lr: float, staleness_fn: StalenessFn
    ) -> None:
        self.weights = initial
        self.version = 0
        self.buffer_size = buffer_size
        self.server_lr = server_lr
        self.staleness_fn = staleness_fn
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
        out: Weights = {}
        for key, w in self.weights.items():
            if not torch.is_floating_point(w):
                out[key] = w
                continue
            step = sum(delta[key] * (weight / total) for delta, weight, _ in self.buffer)
            out[key] = (w.to(torch.float64) + self.server_lr * step).to(w.dtype)
        self.buffer.clear()
        previous = self.version
        self.weights = out
        self.version += 1
        self.history[self.version] = out
        self._forget(previous)

    def drain(self) -> None:
        # The run is over: a partly filled buffer is applied rather than thrown away.
        if self.buffer:
            self._step()


def _run(
    world: World,
    *,
    stage: str,
    total_updates: int,
    client_ids: Sequence[int],
    plan: LocalPlan,
    on_round: RoundCallback,
    rule: _ServerRule,
    concurrency: int,
    max_staleness: int | None,
    rng: np.random.Generator,
    share: Callable[[Weights], Weights],
    updates_per_round: int | None,
) -> Generator:
    clients = list(client_ids)
    if len(set(clients)) != len(clients):
        raise ValueError("client_ids must be distinct")
    if total_updates < 0:
        raise ValueError(f"total_updates must be >= 0 (got {total_updates})")
    if not 1 <= concurrency <= len(clients):
        raise ValueError(f"concurrency must be in 1..{len(clients)} (got {concurrency})")
    if max_staleness is not None and max_staleness < 0:
        raise ValueError(f"max_staleness must be >= 0 (got {max_staleness})")
    per_round = len(clients) if updates_per_round is None else updates_per_round
    if per_round < 1:
        raise ValueError(f"updates_per_round must be >= 1 (got {per_round})")

    env = world.env
    idle = clients.copy()  # order changes by swap-removal, deterministically
    dispatched = resolved = step = 0
    applied: list[Update] = []
    done = env.event()

    def record(
        cid: int,
        version: int,
        t_dispatch: float,
        t_arrival: float | None,
        staleness: int | None,
        reason: str,
    ) -> None:
        world.log.record_update(
            UpdateRecord(
                client=cid,
                stage=stage,
                round=version,
                t_dispatch_s=t_dispatch,
                t_arrival_s=t_arrival,
                staleness=staleness,
                status="dropped" if reason else "applied",
                reason=reason,
            )
        )

    def dispatch() -> None:
        nonlocal dispatched
        i = int(rng.integers(len(idle)))
        cid = idle[i]
        idle[i] = idle[-1]
        idle.pop()
        rule.hold(rule.version)
        env.process(flight(dispatched, cid, rule.version, rule.weights, env.now))
        dispatched += 1

    def flight(seq: int, cid: int, version: int, weights: Weights, t_dispatch: float) -> Generator:
        node = client_node(cid)
        received = yield world.channel.send(
            SERVER, node, weights, kind="model_down", stage=stage, round=version
        )
        flops, fn, args = plan(cid, received, seq)
        try:
            update: Update = yield from world.client_work(cid, flops, fn, *args, may_drop=True)
        except TaskDropped as lost:
            # The server learns of the loss when it happens and moves on.
            rule.release(version)
            record(cid, version, t_dispatch, None, None, lost.reason)
            settle(cid)
            return
        shared = share(update.weights)
        stamp = StalenessStamp(lambda: rule.version - version)
        yield world.channel.send(
            node, SERVER, shared, kind="update_up", stage=stage, round=version, staleness=stamp
        )
        staleness = stamp()
        if max_staleness is not None and staleness > max_staleness:
            rule.release(version)
            record(cid, version, t_dispatch, env.now, staleness, "stale")
        else:
            kept = Update(shared, update.num_samples, update.loss)
            rule.apply(kept, version, staleness)
            applied.append(kept)
            record(cid, version, t_dispatch, env.now, staleness, "")
        settle(cid)

    def settle(cid: int) -> None:
        """After an update is resolved: pace the callbacks, then keep `concurrency` busy."""
        nonlocal resolved, step
        resolved += 1
        idle.append(cid)
        finished = resolved == total_updates
        if finished:
            rule.drain()
        if resolved % per_round == 0 or finished:
            on_round(step, rule.weights, applied.copy())
            applied.clear()
            world.progress.advance()
            step += 1
        if dispatched < total_updates:
            dispatch()
        elif finished:
            done.succeed()

    for _ in range(min(concurrency, total_updates)):
        dispatch()
    if total_updates > 0:
        yield done
    yield from final_broadcast(
        world, stage=stage, client_ids=clients, weights=rule.weights, round=rule.version
    )
    return rule.weights


def fedasync(
    world: World,
    *,
    stage: str,
    total_updates: int,
    client_ids: Sequence[int],
    initial: Weights,
    plan: LocalPlan,
    on_round: RoundCallback,
    rng: np.random.Generator,
    concurrency: int,
    mixing: float,
    staleness_fn: StalenessFn | None = None,
    max_staleness: int | None = None,
    updates_per_round: int | None = None,
    share: Callable[[Weights], Weights] = identity,
) -> Generator:
    """FedAsync (Xie et al. 2019): each landing update is mixed in at once,
    w <- (1 - a_s) w + a_s w_client with a_s = mixing * staleness_fn(s), and bumps the version.
    `staleness_fn` defaults to constant. Returns the final weights (after the final broadcast).
    """
    if not 0 < mixing <= 1:
        raise ValueError(f"mixing must be in (0, 1] (got {mixing})")
    rule = _Mixing(initial, mixing, staleness_fn or constant())
    return (
        yield from _run(
            world,
            stage=stage,
            total_updates=total_updates,
            client_ids=client_ids,
            plan=plan,
            on_round=on_round,
            rule=rule,
            concurrency=concurrency,
            max_staleness=max_staleness,
            rng=rng,
            share=share,
            updates_per_round=updates_per_round,
        )
    )


def fedbuff(
    world: World,
    *,
    stage: str,
    total_updates: int,
    client_ids: Sequence[int],
    initial: Weights,
    plan: LocalPlan,
    on_round: RoundCallback,
    rng: np.random.Generator,
    concurrency: int,
    buffer_size: int,
    max_staleness: int | None = None,
    server_lr: float = 1.0,
    staleness_fn: StalenessFn | None = None,
    updates_per_round: int | None = None,
    share: Callable[[Weights], Weights] = identity,
) -> Generator:
    """FedBuff (Nguyen et al. 2022): clients upload their model; the server buffers its delta
    against the version the client started from and, every `buffer_size` kept deltas, steps
    w <- w + server_lr * sum_i n_i f(s_i) delta_i / sum_i n_i (n: sample count, f:
    `staleness_fn`, constant by default, s measured on arrival) and bumps the version. A partly
    filled buffer is applied when the last update has landed. Returns the final weights."""
    if buffer_size < 1:
        raise ValueError(f"buffer_size must be >= 1 (got {buffer_size})")
    if not server_lr > 0:
        raise ValueError(f"server_lr must be > 0 (got {server_lr})")
    rule = _Buffered(initial, buffer_size, server_lr, staleness_fn or constant())
    return (
        yield from _run(
            world,
            stage=stage,
            total_updates=total_updates,
            client_ids=client_ids,
            plan=plan,
            on_round=on_round,
            rule=rule,
            concurrency=concurrency,
            max_staleness=max_staleness,
            rng=rng,
            share=share,
            updates_per_round=updates_per_round,
        )
    )
