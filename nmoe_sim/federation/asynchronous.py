"""Asynchronous federation: one driver loop, `run_async`, for any server rule (rules/): FedAsync
is it with the `Mixing` rule, FedBuff with the `Buffered` one.

`concurrency` clients train at once; each downloads the server's current model (noting its
version), runs `plan`'s task and uploads `share(weights)`. The server acts only when an upload
lands (or a client's task is reported lost: "dropout"): it measures the update's staleness
(server version now minus the version the client started from), drops it if staler than
`max_staleness`, otherwise hands it to the rule; then it dispatches the next client, drawn by
`rng` among the idle ones, until `total_updates` have been dispatched. The run ends when every
dispatched update has been applied or dropped (the rule is then flushed); the server then
broadcasts the final model to every client.

Pacing: `on_round(step, weights, applied updates)` runs once per
`updates_per_round` (default: the number of clients) resolved (applied or dropped) updates, and
once more for a remainder, so `total_updates = rounds * K` with `updates_per_round = K` advances
calls it exactly `rounds` times, as `sync_rounds` does with K clients per round.

`plan`'s third argument is the dispatch index (0, 1, ...): unique per task, so per-task seeds
never repeat even when a client starts twice from the same version.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

import numpy as np

from nmoe_sim.federation.aggregate import Weights
from nmoe_sim.federation.rules import Buffered, Mixing, ServerRule, mix
from nmoe_sim.federation.server_optimizers import ServerOptimizer
from nmoe_sim.federation.staleness import StalenessFn
from nmoe_sim.federation.sync import (
    LocalPlan,
    RoundCallback,
    StalenessStamp,
    final_broadcast,
    identity,
)
from nmoe_sim.learning.client import Update
from nmoe_sim.network.devices import SERVER, TaskDropped, client_node
from nmoe_sim.telemetry.schema import UpdateRecord
from nmoe_sim.world import World

__all__ = ["fedasync", "fedbuff", "mix", "run_async"]


def run_async(
    world: World,
    *,
    stage: str,
    total_updates: int,
    client_ids: Sequence[int],
    plan: LocalPlan,
    on_round: RoundCallback,
    rule: ServerRule,
    rng: np.random.Generator,
    concurrency: int,
    max_staleness: int | None = None,
    updates_per_round: int | None = None,
    share: Callable[[Weights], Weights] = identity,
) -> Generator[Any, Any, Weights]:
    """The asynchronous driver (see the module docstring) with `rule` folding updates in;
    returns the final weights, after the final broadcast."""
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

    def flight(
        seq: int, cid: int, version: int, weights: Weights, t_dispatch: float
    ) -> Generator[Any, Any, None]:
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
            rule.flush()
        if resolved % per_round == 0 or finished:
            on_round(step, rule.weights, applied.copy())
            applied.clear()
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
    initial: Weights,
    mixing: float,
    staleness_fn: StalenessFn | None = None,
    optimizer: ServerOptimizer | None = None,
    **driver: Any,
) -> Generator[Any, Any, Weights]:
    """FedAsync (Xie et al. 2019): `run_async` with the `Mixing` rule, each landing update mixed
    in at once, w <- (1 - a_s) w + a_s w_client with a_s = mixing * staleness_fn(s)."""
    return run_async(world, rule=Mixing(initial, mixing, staleness_fn, optimizer), **driver)


def fedbuff(
    world: World,
    *,
    initial: Weights,
    buffer_size: int,
    staleness_fn: StalenessFn | None = None,
    optimizer: ServerOptimizer | None = None,
    **driver: Any,
) -> Generator[Any, Any, Weights]:
    """FedBuff (Nguyen et al. 2022): `run_async` with the `Buffered` rule, one server step per
    `buffer_size` kept deltas (the optimizer's lr scales it)."""
    return run_async(world, rule=Buffered(initial, buffer_size, staleness_fn, optimizer), **driver)
