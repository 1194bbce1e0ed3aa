"""One entry point for every federated stage: the scenario's `federation.mode` picks the server
rule (how updates fold in) and the driver (when), and `federation.server_optimizer` the step the
server takes along each aggregate."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from nmoe_sim.config import FederationConfig
from nmoe_sim.federation import server_optimizers
from nmoe_sim.federation.aggregate import Weights
from nmoe_sim.federation.asynchronous import run_async
from nmoe_sim.federation.rules import Buffered, Mixing, ServerRule, WeightedMean
from nmoe_sim.federation.server_optimizers import ServerOptimizer
from nmoe_sim.federation.staleness import StalenessFn, by_name
from nmoe_sim.federation.sync import LocalPlan, RoundCallback, SyncSettings, identity, sync_rounds
from nmoe_sim.learning.client import Update
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


def server_optimizer(fed: FederationConfig) -> ServerOptimizer:
    """A fresh optimizer (empty state) with the hyperparameters its kind takes; the others in
    the section are ignored, as mode-specific keys are, and an unset `lr` is the optimizer's
    own default."""
    cfg = fed.server_optimizer
    wanted = server_optimizers.parameters(cfg.name)
    given = {key: getattr(cfg, key) for key in wanted}
    return server_optimizers.by_name(
        cfg.name, **{key: value for key, value in given.items() if value is not None}
    )


def server_rule(fed: FederationConfig, initial: Weights) -> ServerRule:
    optimizer = server_optimizer(fed)
    if fed.mode == "sync":
        return WeightedMean(initial, optimizer)
    if fed.mode == "fedasync":
        return Mixing(initial, fed.mixing, staleness_function(fed), optimizer)
    return Buffered(initial, fed.buffer_size, staleness_function(fed), optimizer)


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
) -> Generator[Any, Any, Weights]:
    """Train `rounds` rounds' worth of client updates (rounds x clients per round), then send the
    final weights to every client; returns them. Async modes call `on_round` every
    clients-per-round updates, so curves line up with synchronous runs; `on_round` is called
    every `federation.evaluate_every` rounds and after the last. The server optimizer's
    state lives for this one call."""
    fed = ctx.scenario.federation
    per_round = fed.clients_per_round or len(ctx.client_ids)
    rng = numpy_rng(ctx.scenario.seed, "federation", world.log.name, stage)
    rule = server_rule(fed, initial)
    ctx.progress.stage(world.log.name, stage, rounds)

    def round_done(r: int, weights: Weights, updates: list[Update]) -> None:
        # Scoring the global model costs a pass over the test set: with many short rounds
        # (cross-device) users score every few rounds.
        if (r + 1) % fed.evaluate_every == 0 or r + 1 == rounds:
            on_round(r, weights, updates)
        ctx.progress.round(r + 1, world.env.now)

    if fed.mode == "sync":
        settings = SyncSettings(fed.clients_per_round, fed.over_selection, fed.deadline_s)
        return (
            yield from sync_rounds(
                world,
                rounds=rounds,
                settings=settings,
                rule=rule,
                stage=stage,
                client_ids=ctx.client_ids,
                plan=plan,
                on_round=round_done,
                share=share,
                rng=rng,
            )
        )
    return (
        yield from run_async(
            world,
            rule=rule,
            total_updates=rounds * per_round,
            concurrency=fed.concurrency or per_round,
            max_staleness=fed.max_staleness,
            updates_per_round=per_round,
            stage=stage,
            client_ids=ctx.client_ids,
            plan=plan,
            on_round=round_done,
            share=share,
            rng=rng,
        )
    )
