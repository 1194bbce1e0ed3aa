"""Baselines: local-only, FedAvg and centralized training of extractor + linear classifier."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import numpy as np

from nmoe_sim.federation.aggregate import Weights
from nmoe_sim.learning.client import ClientState, Update, fit_classifier, fresh_weights
from nmoe_sim.models.spec import TRAIN_FLOPS_FACTOR
from nmoe_sim.network.devices import SERVER, client_node
from nmoe_sim.pipelines.context import MethodResult, RunContext, mean_loss
from nmoe_sim.pipelines.federate import federate


def _train_flops(ctx: RunContext, samples: int, epochs: int) -> float:
    return TRAIN_FLOPS_FACTOR * ctx.spec.forward_flops("classifier") * samples * epochs


def run_local(ctx: RunContext) -> MethodResult:
    """Every client trains its own model on its own data; nothing is communicated."""
    cfg = ctx.scenario.baselines.local
    log = ctx.recorder.method("local")
    world = ctx.world(log)
    ctx.progress.stage("local", "training every client alone")

    def all_clients() -> Generator[Any, Any, list[Any]]:
        procs = [
            world.env.process(
                world.client_work(
                    cid,
                    _train_flops(ctx, ctx.num_train[cid], cfg.epochs),
                    fit_classifier,
                    None,
                    cfg.optim,
                    cfg.epochs,
                    ctx.seed("local", "client", cid),
                )
            )
            for cid in ctx.client_ids
        ]
        yield world.env.all_of(procs)
        return [p.value for p in procs]

    updates: list[Update] = world.run(all_clients())
    predictions = [ctx.evaluator.classify(ctx.spec, u.weights) for u in updates]
    scores = ctx.evaluator.score_each(predictions)
    world.metric(
        "local", cfg.epochs, scores.accuracy_global, float(np.mean([u.loss for u in updates]))
    )
    log.mark_stage("local", 0.0, world.env.now)
    log.finish(world.env.now)
    return MethodResult(scores, log)


def run_fedavg(ctx: RunContext) -> MethodResult:
    """One global extractor + classifier by FedAvg over all clients."""
    cfg = ctx.scenario.baselines.fedavg
    log = ctx.recorder.method("fedavg")
    world = ctx.world(log)
    initial = fresh_weights(ctx.spec.build_classifier(), ctx.seed("fedavg", "init"))

    def plan(
        cid: int, weights: Weights | None, r: int
    ) -> tuple[float, Callable[..., Update], tuple[Any, ...]]:
        flops = _train_flops(ctx, ctx.num_train[cid], cfg.local_epochs)
        args = (weights, cfg.optim, cfg.local_epochs, ctx.seed("fedavg", "round", r, "client", cid))
        return flops, fit_classifier, args

    def on_round(r: int, weights: Weights, updates: list[Update]) -> None:
        acc = ctx.evaluator.shared_accuracy(ctx.evaluator.classify(ctx.spec, weights))
        world.metric("fedavg", r + 1, acc, mean_loss(updates))

    final = world.run(
        federate(
            ctx,
            world,
            stage="fedavg",
            rounds=cfg.rounds,
            initial=initial,
            plan=plan,
            on_round=on_round,
        )
    )
    scores = ctx.evaluator.score_shared(ctx.evaluator.classify(ctx.spec, final))
    log.mark_stage("fedavg", 0.0, world.env.now)
    log.finish(world.env.now)
    return MethodResult(scores, log)


def run_centralized(ctx: RunContext) -> MethodResult:
    """Upper bound: every client uploads its raw data and the server trains on all of it."""
    cfg = ctx.scenario.baselines.centralized
    log = ctx.recorder.method("centralized")
    world = ctx.world(log)
    server = ClientState(-1, ctx.spec, ctx.train_x, ctx.train_y, ctx.device)
    client_slices = np.cumsum([0] + [ctx.num_train[c] for c in ctx.client_ids])

    def pipeline() -> Generator[Any, Any, Update]:
        uploads = [
            world.channel.send(
                client_node(cid),
                SERVER,
                (
                    ctx.train_x[client_slices[i] : client_slices[i + 1]],
                    ctx.train_y[client_slices[i] : client_slices[i + 1]],
                ),
                kind="raw_data",
                stage="centralized",
                round=0,
            )
            for i, cid in enumerate(ctx.client_ids)
        ]
        yield world.env.all_of(uploads)
        ctx.progress.stage("centralized", f"{cfg.epochs} epochs on the server")
        update: Update = yield from world.server_work(
            _train_flops(ctx, server.num_train, cfg.epochs),
            fit_classifier,
            server,
            fresh_weights(ctx.spec.build_classifier(), ctx.seed("centralized", "init")),
            cfg.optim,
            cfg.epochs,
            ctx.seed("centralized", "train"),
        )
        return update

    update: Update = world.run(pipeline())
    scores = ctx.evaluator.score_shared(ctx.evaluator.classify(ctx.spec, update.weights))
    world.metric("centralized", cfg.epochs, scores.accuracy_global, update.loss)
    log.mark_stage("centralized", 0.0, world.env.now)
    log.finish(world.env.now)
    return MethodResult(scores, log)
