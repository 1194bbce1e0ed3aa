"""Synchronous federated rounds (FedAvg-style): broadcast, local work, upload, weighted average."""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

from nmoe_sim.federation.aggregate import Weights, weighted_average
from nmoe_sim.learning.client import Update
from nmoe_sim.network.devices import SERVER, client_node
from nmoe_sim.world import World

# What a client computes, as drivers ask it: (client, weights received or None, round or step)
# -> (FLOPs of the work, the task function, its arguments after the client state).
LocalPlan = Callable[
    [int, Weights | None, int], tuple[float, Callable[..., Update], tuple[Any, ...]]
]


def sync_rounds(
    world: World,
    *,
    stage: str,
    rounds: int,
    client_ids: Sequence[int],
    initial: Weights,
    plan: LocalPlan,
    on_round: Callable[[int, Weights, list[Update]], None],
    share: Callable[[Weights], Weights] = lambda w: w,
) -> Generator:
    """Every round all `client_ids` download the global weights, run `plan`'s task and upload
    `share(update)`; the server then averages uploads weighted by sample count. After the last
    round the server sends the final weights to every client; returns them."""
    global_weights = initial

    def one_client(cid: int, r: int) -> Generator:
        received = yield world.channel.send(
            SERVER, client_node(cid), global_weights, kind="model_down", stage=stage, round=r
        )
        flops, fn, args = plan(cid, received, r)
        update: Update = yield from world.client_work(cid, flops, fn, *args)
        shared = share(update.weights)
        yield world.channel.send(
            client_node(cid), SERVER, shared, kind="update_up", stage=stage, round=r
        )
        return Update(shared, update.num_samples, update.loss)

    for r in range(rounds):
        procs = [world.env.process(one_client(cid, r)) for cid in client_ids]
        yield world.env.all_of(procs)
        updates: list[Update] = [p.value for p in procs]
        global_weights = weighted_average(
            [u.weights for u in updates], [u.num_samples for u in updates]
        )
        on_round(r, global_weights, updates)
        world.progress.advance()
    final = [
        world.channel.send(
            SERVER, client_node(c), global_weights, kind="model_down", stage=stage, round=rounds
        )
        for c in client_ids
    ]
    yield world.env.all_of(final)
    return global_weights
