"""One entry point for every federated stage: the scenario's `federation.mode` picks the driver."""

from __future__ import annotations

from collections.abc import Callable, Generator

from nmoe_sim.config import FederationConfig
from nmoe_sim.federation.aggregate import Weights
from nmoe_sim.federation.asynchronous import fedasync, fedbuff
from nmoe_sim.federation.staleness import StalenessFn, by_name
from nmoe_sim.federation.sync import LocalPlan, RoundCallback, SyncSettings, identity, sync_rounds
from nmoe_sim.pipelines.context import RunContext
from nmoe_sim.seeds import numpy_rng
from nmoe_sim.world import World


def staleness_function(fed: FederationConfig) -> StalenessFn:
    params = {
        "constant": {},
        "polynomial": {"a": fed.staleness.a},
        "hinge": {"a": fed.staleness.a, "b": fed.staleness.b},
    }
    return by_name(fed.staleness.function, **params[fed.staleness.function])


def federate(
    ctx: RunContext,
    world: World,
    *,
    stage: str,
    rounds: int,
    initial: Weights,
    plan: LocalPlan,
    on_round: RoundCallback,
    share: Callable[[Weights], Weights] = identity,
) -> Generator:
    """Train `rounds` rounds' worth of client updates (rounds x clients per round), then send the
    final weights to every client; returns them. Async modes call `on_round` every
    clients-per-round updates, so curves line up with synchronous runs."""
    fed = ctx.scenario.federation
    per_round = fed.clients_per_round or len(ctx.client_ids)
    rng = numpy_rng(ctx.scenario.seed, "federation", world.log.name, stage)
    common = dict(
        stage=stage,
        client_ids=ctx.client_ids,
        initial=initial,
        plan=plan,
        on_round=on_round,
        share=share,
        rng=rng,
    )
    if fed.mode == "sync":
        settings = SyncSettings(fed.clients_per_round, fed.over_selection, fed.deadline_s)
        return (yield from sync_rounds(world, rounds=rounds, settings=settings, **common))
    async_common = dict(
        total_updates=rounds * per_round,
        concurrency=fed.concurrency or per_round,
        max_staleness=fed.max_staleness,
        staleness_fn=staleness_function(fed),
        updates_per_round=per_round,
        **common,
    )
    if fed.mode == "fedasync":
        return (yield from fedasync(world, mixing=fed.mixing, **async_common))
    return (
        yield from fedbuff(
            world, buffer_size=fed.buffer_size, server_lr=fed.server_lr, **async_common
        )
    )
