"""The NMoE method: stage 1 (FedCE / FedSC), stage 2 (experts), stage 3 (gating), per extractor.

Stages 1-2 run once per extractor in the pipeline's own world ("nmoe/fedsc"); every gating
scheme then branches into a world of its own that starts where stages 1-2 ended, so the three
schemes are compared from the same experts without sharing links or clocks.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import numpy as np
import torch

from nmoe_sim.federation.passing import pass_along, random_walk_route, ring_route
from nmoe_sim.inference import (
    DelayEstimator,
    ServingModel,
    ServingSettings,
    fixed_scores,
    nominal_round_trips,
    poisson_queries,
    serve,
    summarise,
)
from nmoe_sim.learning import client as tasks
from nmoe_sim.learning.client import ContrastiveSettings, GateSettings, Update, Weights
from nmoe_sim.learning.evaluate import (
    gate_routing,
    gate_scores,
    mixture_predictions,
    routing_frequency,
)
from nmoe_sim.methods import NmoeMethod
from nmoe_sim.models.spec import TRAIN_FLOPS_FACTOR
from nmoe_sim.network.devices import client_node
from nmoe_sim.network.payload import payload_bytes
from nmoe_sim.pipelines.context import MethodResult, RunContext, mean_loss
from nmoe_sim.pipelines.federate import federate
from nmoe_sim.seeds import numpy_rng
from nmoe_sim.telemetry.records import MethodLog
from nmoe_sim.world import World

EXTRACTOR_PREFIX = "extractor."


def _extractor_part(weights: Weights) -> Weights:
    n = len(EXTRACTOR_PREFIX)
    return {k[n:]: v for k, v in weights.items() if k.startswith(EXTRACTOR_PREFIX)}


class NmoePipeline:
    def __init__(self, ctx: RunContext, extractor: str) -> None:
        self.ctx = ctx
        self.extractor = extractor
        self.name = f"nmoe/{extractor}"
        self.log = ctx.recorder.method(self.name)
        self.world = ctx.world(self.log)
        self.features: torch.Tensor | None = None  # global test features
        self.expert_probs: torch.Tensor | None = None  # [test, experts, classes]

    # -- stages 1 and 2 ------------------------------------------------------------------------

    def train_shared(self) -> None:
        world, ctx = self.world, self.ctx
        cfg = ctx.scenario.stages.extractor
        spec = ctx.spec
        supervised = self.extractor == "fedce"
        part = "classifier" if supervised else "contrastive"
        # FedSC computes two augmented views per sample.
        per_sample = TRAIN_FLOPS_FACTOR * spec.forward_flops(part) * (1 if supervised else 2)
        model = spec.build_classifier() if supervised else spec.build_contrastive()
        initial = tasks.fresh_weights(model, ctx.seed(self.name, "init"))
        contrastive = ContrastiveSettings(cfg.temperature, cfg.crop_scale_min, cfg.jitter)

        def plan(cid: int, weights: Weights, r: int) -> tuple:
            seed = ctx.seed(self.name, "extractor", r, cid)
            flops = per_sample * ctx.num_train[cid] * cfg.local_epochs
            if supervised:
                return flops, tasks.fit_classifier, (weights, cfg.optim, cfg.local_epochs, seed)
            return (
                flops,
                tasks.fit_contrastive,
                (weights, cfg.optim, cfg.local_epochs, contrastive, seed),
            )

        def on_round(r: int, weights: Weights, updates: list[Update]) -> None:
            ctx.progress.describe(f"{self.name}: extractor round {r + 1}/{cfg.rounds}")
            loss = mean_loss(updates)
            acc = None
            if supervised:  # FedCE's temporary head makes the global model a classifier
                pred = ctx.evaluator.classify(spec, weights)
                acc = ctx.evaluator.score_shared(pred).accuracy_global
            world.metric("extractor", r + 1, acc, loss)

        expert_cfg = ctx.scenario.stages.expert
        embed_flops = spec.forward_flops("extractor")
        # The final expert plus, when cross-fitting, `folds` experts on (folds-1)/folds of the
        # data: `folds` full trainings in all (one without cross-fitting); then one forward pass
        # over the local data for the own outputs.
        expert_flops = spec.forward_flops("expert") * (
            TRAIN_FLOPS_FACTOR * expert_cfg.epochs * expert_cfg.cross_fit_folds + 1
        )

        def client_stage2(cid: int, extractor_weights: Weights) -> Generator:
            n = ctx.num_train[cid]
            yield from world.client_work(
                cid, embed_flops * n, tasks.embed, self.name, extractor_weights
            )
            return (
                yield from world.client_work(
                    cid,
                    expert_flops * n,
                    tasks.fit_expert,
                    self.name,
                    expert_cfg.optim,
                    expert_cfg.epochs,
                    expert_cfg.cross_fit_folds,
                    ctx.seed(self.name, "expert", cid),
                )
            )

        def pipeline() -> Generator:
            final = yield from federate(
                ctx,
                world,
                stage="extractor",
                rounds=cfg.rounds,
                initial=initial,
                plan=plan,
                on_round=on_round,
            )
            self.log.mark_stage("extractor", 0.0, world.env.now)
            start2 = world.env.now
            ctx.progress.describe(f"{self.name}: personalized experts")
            extractor_weights = _extractor_part(final)
            procs = [world.env.process(client_stage2(c, extractor_weights)) for c in ctx.client_ids]
            yield world.env.all_of(procs)
            self.log.mark_stage("expert", start2, world.env.now)
            world.metric("expert", 0, None, float(np.mean([p.value for p in procs])))
            return extractor_weights

        extractor_weights = world.run(pipeline())
        self.log.finish(world.env.now)
        ctx.progress.advance()
        # Evaluation inputs, computed once for every gating branch.
        self.features = ctx.evaluator.features(spec, extractor_weights)
        experts = [
            ctx.backend.submit(c, tasks.expert_weights, self.name).result() for c in ctx.client_ids
        ]
        self.expert_probs = ctx.evaluator.expert_probs(spec, experts, self.features)

    # -- evaluation ----------------------------------------------------------------------------

    def _result(self, routings: Sequence[torch.Tensor], log: MethodLog) -> MethodResult:
        ev = self.ctx.evaluator
        predictions = [mixture_predictions(r, self.expert_probs) for r in routings]
        freq = np.stack(
            [routing_frequency(r[idx]) for r, idx in zip(routings, ev.client_test, strict=True)]
        )
        return MethodResult(ev.score_each(predictions), log, freq)

    def _client_gates(
        self, method: str, fallback: Weights | None = None, shared: Weights | None = None
    ) -> list[Weights]:
        """Each client's gate; a client holding no gate yet (mid random walk, or not yet selected
        by FedGate) gets `fallback`. `shared` (FedGate's current global trunk) replaces that part
        of every client's gate, as at the end."""
        gates = []
        for c in self.ctx.client_ids:
            gate = self.ctx.backend.submit(c, tasks.gate_weights, method).result()
            gate = fallback if gate is None else gate
            if gate is None:
                raise RuntimeError(f"client {c} holds no gate for {method}")
            gates.append(gate if shared is None else {**gate, **shared})
        return gates

    def _gate_routings(
        self, method: str, fallback: Weights | None = None, shared: Weights | None = None
    ) -> list[torch.Tensor]:
        """Each client's gate routing on the test features (see `_client_gates`)."""
        ctx = self.ctx
        k = ctx.scenario.stages.gate.top_k
        return [
            gate_routing(ctx.spec, gate, self.features, k, torch.device(ctx.device))
            for gate in self._client_gates(method, fallback, shared)
        ]

    # -- routing references ----------------------------------------------------------------------

    def reference(self, method: NmoeMethod) -> MethodResult:
        """Fixed routing over the trained experts: own expert only, or all experts equally."""
        n_test, n_experts = self.expert_probs.shape[:2]
        routings = []
        for i, _ in enumerate(self.ctx.client_ids):
            if method.routing == "own_expert":
                r = torch.zeros(n_test, n_experts)
                r[:, i] = 1.0
            else:
                r = torch.full((n_test, n_experts), 1.0 / n_experts)
            routings.append(r)
        log = self.ctx.recorder.method(method.name, parent=self.log)
        log.finish(self.log.sim_time_s)
        return self._result(routings, log)

    # -- stage 3 ---------------------------------------------------------------------------------

    def _exchange_expert_outputs(self, world: World) -> Generator:
        """Each client sends its train features to every remote expert once and caches the
        answers: experts are frozen in stage 3, so this is exact and the cheapest protocol.
        (The own expert's outputs were recorded in stage 2.)"""
        ctx = self.ctx
        serve_flops = ctx.spec.forward_flops("expert")

        # Read each client's features once, not once per remote expert.
        features = {
            i: ctx.backend.submit(i, tasks.train_features, self.name).result()
            for i in ctx.client_ids
        }

        def pair(i: int, j: int) -> Generator:
            feats = yield world.channel.send(
                client_node(i), client_node(j), features[i], kind="features", stage="gate", round=0
            )
            probs = yield from world.client_work(
                j, serve_flops * ctx.num_train[i], tasks.serve_expert, self.name, feats
            )
            probs = yield world.channel.send(
                client_node(j), client_node(i), probs, kind="expert_out", stage="gate", round=0
            )
            ctx.backend.submit(i, tasks.store_expert_probs, self.name, j, probs).result()

        procs = [
            world.env.process(pair(i, j)) for i in ctx.client_ids for j in ctx.client_ids if i != j
        ]
        yield world.env.all_of(procs)

    def gating(self, method: NmoeMethod) -> MethodResult:
        ctx = self.ctx
        cfg = ctx.scenario.stages.gate
        log = ctx.recorder.method(method.name, parent=self.log)
        world = ctx.world(log, start_s=self.log.sim_time_s)
        settings = GateSettings(
            cfg.top_k, cfg.routing_noise, cfg.load_balance, cfg.class_balanced, cfg.dense_loss
        )
        gate_flops = TRAIN_FLOPS_FACTOR * ctx.spec.forward_flops("gate") * cfg.local_epochs
        n_clients = len(ctx.client_ids)

        def gate_plan(cid: int, incoming: Weights | None, step: int) -> tuple:
            seed = ctx.seed(method.name, "gate", step, cid)
            args = (self.name, method.name, incoming, cfg.optim, cfg.local_epochs, settings, seed)
            return gate_flops * ctx.num_train[cid], tasks.fit_gate, args

        def evaluate(
            round_: int,
            loss: float | None,
            fallback: Weights | None = None,
            shared: Weights | None = None,
        ) -> None:
            ctx.progress.describe(f"{method.name}: gate round {round_}/{cfg.rounds}")
            routings = self._gate_routings(method.name, fallback, shared)
            scores = ctx.evaluator.score_each(
                [mixture_predictions(r, self.expert_probs) for r in routings]
            )
            world.metric("gate", round_, scores.accuracy_global, loss)
            ctx.progress.advance()

        def fedgate() -> Generator:
            # A client not selected yet has no output layer of its own: it uses the initial one
            # under the current trunk (with partial participation some never train).
            initial = tasks.fresh_weights(ctx.spec.build_gate(), ctx.seed(method.name, "init"))
            final = yield from federate(
                ctx,
                world,
                stage="gate",
                rounds=cfg.rounds,
                initial=tasks.trunk_only(initial),
                share=tasks.trunk_only,
                plan=gate_plan,
                on_round=lambda r, w, ups: evaluate(r + 1, mean_loss(ups), initial, w),
            )
            for cid in ctx.client_ids:  # the averaged trunk under each client's own output layer
                ctx.backend.submit(cid, tasks.adopt_gate, method.name, final, initial).result()

        def passing() -> Generator:
            steps = cfg.rounds * n_clients
            if method.routing == "rollgate":
                route = ring_route(ctx.client_ids, cfg.rounds)
            else:
                rng = np.random.default_rng(ctx.seed(method.name, "walk"))
                route = random_walk_route(ctx.neighbours, steps, rng)
            losses: list[float] = []

            def on_step(step: int, cid: int, update: Update) -> None:
                losses.append(update.loss)
                if (step + 1) % n_clients == 0:
                    evaluate(
                        (step + 1) // n_clients, float(np.mean(losses[-n_clients:])), update.weights
                    )

            last, weights = yield from pass_along(
                world, stage="gate", route=route, plan=gate_plan, on_step=on_step
            )
            # Each visited client keeps the gate as it left it; clients the walk never reached
            # get the final gate from its last holder.
            unvisited = [c for c in ctx.client_ids if c not in set(route)]
            sends = [
                world.channel.send(
                    client_node(last),
                    client_node(c),
                    weights,
                    kind="gate_pass",
                    stage="gate",
                    round=steps,
                )
                for c in unvisited
            ]
            yield world.env.all_of(sends)
            for c in unvisited:
                ctx.backend.submit(c, tasks.adopt_gate, method.name, weights).result()

        def stage3() -> Generator:
            start = world.env.now
            ctx.progress.describe(f"{method.name}: exchanging expert outputs")
            yield from self._exchange_expert_outputs(world)
            yield from (fedgate() if method.routing == "fedgate" else passing())
            log.mark_stage("gate", start, world.env.now)

        world.run(stage3())
        log.finish(world.env.now)
        return self._result(self._gate_routings(method.name), log)

    # -- serving ---------------------------------------------------------------------------------

    def serve(self, method: NmoeMethod, result: MethodResult) -> dict[str, Any]:
        """The serving stage of a trained method: Poisson queries at every client on a fresh world
        (fresh links and devices) whose clock starts where the method's training ended. Its
        transfers go to the method's serving log (trace stage "inference"); its per-query rows to
        inference.csv. Returns the summary's `inference` entry."""
        ctx = self.ctx
        cfg = ctx.scenario.inference
        ev = ctx.evaluator
        n_clients = len(ctx.client_ids)
        n_samples = self.features.shape[0]
        if method.trains_gate:
            device = torch.device(ctx.device)
            scores = [
                gate_scores(ctx.spec, g, self.features, device).numpy()
                for g in self._client_gates(method.name)
            ]
            top_k = cfg.top_k or ctx.scenario.stages.gate.top_k
            latency_weight = cfg.latency_weight
        else:  # fixed routings: no gate to penalise
            scores = fixed_scores(method.routing, n_clients, n_samples)
            top_k = 1 if method.routing == "own_expert" else n_clients
            latency_weight = 0.0
        model = ServingModel(
            features=self.features,
            expert_probs=self.expert_probs,
            scores=scores,
            fe_flops=ctx.spec.forward_flops("extractor") + ctx.spec.forward_flops("gate"),
            expert_flops=ctx.spec.forward_flops("expert"),
        )
        start = result.log.sim_time_s
        queries = poisson_queries(
            ctx.scenario.seed,
            ctx.client_ids,
            [
                idx.numpy() if cfg.queries_from == "own" else np.arange(n_samples)
                for idx in ev.client_test
            ],
            rate_qps=cfg.rate_qps,
            per_client=cfg.queries_per_client,
            start_s=start,
        )
        ctx.progress.describe(f"{method.name}: serving {len(queries)} queries")
        log = ctx.recorder.serving(method.name)
        world = ctx.world(log, start_s=start)
        estimator = None
        if latency_weight > 0:
            service_mean = [
                world.devices.duration_s(client_node(j), model.expert_flops) for j in ctx.client_ids
            ]
            estimator = DelayEstimator(
                nominal_round_trips(
                    ctx.make_network,
                    n_clients,
                    payload_bytes(self.features[0]),
                    payload_bytes(self.expert_probs[0, 0]),
                    service_mean,
                )
            )
        settings = ServingSettings(
            top_k=top_k,
            deadline_s=None if cfg.deadline_ms is None else cfg.deadline_ms / 1e3,
            latency_weight=latency_weight,
            service=cfg.service,
        )
        rngs = [
            numpy_rng(ctx.scenario.seed, "inference", "service", method.name, j)
            for j in ctx.client_ids
        ]
        run = serve(world, queries, model, settings, estimator=estimator, service_rngs=rngs)
        log.mark_stage("inference", run.t_start_s, run.t_end_s)
        log.finish(run.t_end_s)
        figures, rows = summarise(run, self.expert_probs, ev.test_y)
        ctx.recorder.record_queries(method.name, rows)
        ctx.progress.advance()
        return figures
