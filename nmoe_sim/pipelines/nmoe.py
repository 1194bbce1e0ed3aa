"""The NMoE method: stage 1 (an objective: FedCE, FedSC), stage 2 (experts), stage 3 (a gating
scheme), and the serving of what was trained.

Stages 1-2 run once per objective in the pipeline's own world ("nmoe/fedsc"); every gating
scheme then branches into a world of its own that starts where stages 1-2 ended, so the schemes
are compared from the same experts without sharing links or clocks. The objectives and schemes
are plug-ins (`nmoe_sim/objectives/`, `nmoe_sim/gating/`); this module only sequences them.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nmoe_sim.gating import routing_scheme
from nmoe_sim.gating.base import GateStage, GatingScheme
from nmoe_sim.inference import (
    DelayEstimator,
    ServingModel,
    ServingSettings,
    nominal_round_trips,
    poisson_queries,
    queried_samples,
    serve,
    summarise,
)
from nmoe_sim.learning import client as tasks
from nmoe_sim.learning.client import Update, Weights
from nmoe_sim.learning.evaluate import mixture_predictions, routing_frequency
from nmoe_sim.methods import NmoeMethod
from nmoe_sim.models.spec import TRAIN_FLOPS_FACTOR
from nmoe_sim.network.devices import client_node
from nmoe_sim.network.payload import payload_bytes
from nmoe_sim.objectives import OBJECTIVES
from nmoe_sim.objectives.base import Objective
from nmoe_sim.pipelines.context import MethodResult, RunContext, mean_loss
from nmoe_sim.pipelines.federate import federate
from nmoe_sim.seeds import numpy_rng
from nmoe_sim.telemetry.records import MethodLog
from nmoe_sim.telemetry.summary import InferenceSummary
from nmoe_sim.world import World

EXTRACTOR_PREFIX = "extractor."


def _extractor_part(weights: Weights) -> Weights:
    n = len(EXTRACTOR_PREFIX)
    return {k[n:]: v for k, v in weights.items() if k.startswith(EXTRACTOR_PREFIX)}


@dataclass
class SharedOutputs:
    """Everything stages 1-2 leave for stage 3: per client state, and the evaluation inputs.
    (Their MethodLog stays in the Recorder, which the gating branches' logs point into.)"""

    clients: dict[int, tasks.SharedStages]
    features: torch.Tensor
    expert_probs: torch.Tensor


class NmoePipeline:
    def __init__(self, ctx: RunContext, extractor: str, log: MethodLog | None = None) -> None:
        """`log`: the pipeline's log restored from a checkpoint (then `restore`, not
        `train_shared`)."""
        self.ctx = ctx
        self.extractor = extractor
        self.name = f"nmoe/{extractor}"
        self.objective: Objective = OBJECTIVES.get(extractor)()
        self.log = log if log is not None else ctx.recorder.method(self.name)
        self.features: torch.Tensor | None = None  # global test features
        self.expert_probs: torch.Tensor | None = None  # [test, experts, classes]

    # -- stages 1 and 2 ------------------------------------------------------------------------

    def train_shared(self) -> None:
        ctx = self.ctx
        world = ctx.world(self.log)
        cfg = ctx.scenario.stages.extractor
        spec = ctx.spec
        per_sample = self.objective.train_flops_per_sample(spec)
        initial = tasks.fresh_weights(self.objective.model(spec), ctx.seed(self.name, "init"))

        def plan(
            cid: int, weights: Weights | None, r: int
        ) -> tuple[float, Callable[..., Update], tuple[Any, ...]]:
            seed = ctx.seed(self.name, "extractor", r, cid)
            flops = per_sample * ctx.num_train[cid] * cfg.local_epochs
            fn, args = self.objective.local_task(cfg, weights, seed)
            return flops, fn, args

        def on_round(r: int, weights: Weights, updates: list[Update]) -> None:
            loss = mean_loss(updates)
            acc = self.objective.accuracy(ctx.evaluator, spec, weights)
            world.metric("extractor", r + 1, acc, loss)

        expert_cfg = ctx.scenario.stages.expert
        embed_flops = spec.forward_flops("extractor")
        # The final expert plus, when cross-fitting, `folds` experts on (folds-1)/folds of the
        # data: `folds` full trainings in all (one without cross-fitting); then one forward pass
        # over the local data for the own outputs.
        expert_flops = spec.forward_flops("expert") * (
            TRAIN_FLOPS_FACTOR * expert_cfg.epochs * expert_cfg.cross_fit_folds + 1
        )

        def client_stage2(cid: int, extractor_weights: Weights) -> Generator[Any, Any, float]:
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

        def pipeline() -> Generator[Any, Any, Weights]:
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
            ctx.progress.stage(self.name, "personalized experts")
            extractor_weights = _extractor_part(final)
            procs = [world.env.process(client_stage2(c, extractor_weights)) for c in ctx.client_ids]
            yield world.env.all_of(procs)
            self.log.mark_stage("expert", start2, world.env.now)
            world.metric("expert", 0, None, float(np.mean([p.value for p in procs])))
            return extractor_weights

        extractor_weights = world.run(pipeline())
        self.log.finish(world.env.now)
        # Evaluation inputs, computed once for every gating branch.
        self.features = ctx.evaluator.features(spec, extractor_weights)
        experts = [
            ctx.backend.submit(c, tasks.expert_weights, self.name).result() for c in ctx.client_ids
        ]
        self.expert_probs = ctx.evaluator.expert_probs(spec, experts, self.features)

    def shared_outputs(self) -> SharedOutputs:
        """What `train_shared` left, read back from the clients (for a checkpoint)."""
        features, expert_probs = self._trained()
        backend, name = self.ctx.backend, self.name
        handles = {c: backend.submit(c, tasks.shared_stages, name) for c in self.ctx.client_ids}
        return SharedOutputs({c: h.result() for c, h in handles.items()}, features, expert_probs)

    def restore(self, saved: SharedOutputs) -> None:
        """Continue from a checkpoint's stages 1-2 instead of training them again."""
        backend = self.ctx.backend
        handles = [
            backend.submit(c, tasks.restore_shared_stages, self.name, saved.clients[c])
            for c in self.ctx.client_ids
        ]
        for handle in handles:
            handle.result()
        self.features, self.expert_probs = saved.features, saved.expert_probs

    # -- stage 3 ---------------------------------------------------------------------------------

    def _trained(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(test features, expert probabilities): what `train_shared` leaves for stage 3."""
        assert self.features is not None and self.expert_probs is not None, "train_shared first"
        return self.features, self.expert_probs

    def _stage(self, method: NmoeMethod, log: MethodLog, world: World | None = None) -> GateStage:
        features, expert_probs = self._trained()
        return GateStage(self.ctx, self.name, method.name, features, expert_probs, log, world)

    def gating(self, method: NmoeMethod) -> MethodResult:
        """Stage 3 of `method` from this pipeline's experts, in a world of its own that starts
        where stages 1-2 ended; a fixed routing has no stage 3 and ends where they ended."""
        ctx = self.ctx
        scheme: GatingScheme = routing_scheme(method.routing)
        log = ctx.recorder.method(method.name, parent=self.log)
        if not method.trains_gate:
            log.finish(self.log.sim_time_s)
            return self._result(scheme.routings(self._stage(method, log)), log)
        world = ctx.world(log, start_s=self.log.sim_time_s)
        stage = self._stage(method, log, world)

        def stage3() -> Generator[Any, Any, None]:
            start = world.env.now
            yield from scheme.train(stage)
            log.mark_stage("gate", start, world.env.now)

        world.run(stage3())
        log.finish(world.env.now)
        return self._result(scheme.routings(stage), log)

    def _result(self, routings: Iterable[torch.Tensor], log: MethodLog) -> MethodResult:
        """Scores and routing frequencies, one client's routing at a time."""
        ev = self.ctx.evaluator
        _, expert_probs = self._trained()
        predictions, freq = [], []
        for r, idx in zip(routings, ev.client_test, strict=True):
            predictions.append(mixture_predictions(r, expert_probs))
            freq.append(routing_frequency(r[idx]))
        return MethodResult(ev.score_each(predictions), log, np.stack(freq))

    # -- serving ---------------------------------------------------------------------------------

    def serve(self, method: NmoeMethod, result: MethodResult) -> InferenceSummary:
        """The serving stage of a trained method: Poisson queries at every client on a fresh world
        (fresh links and devices) whose clock starts where the method's training ended. Its
        transfers go to the method's serving log (trace stage "inference"); its per-query rows to
        inference.csv. Returns the summary's `inference` entry."""
        ctx = self.ctx
        cfg = ctx.scenario.inference
        ev = ctx.evaluator
        features, expert_probs = self._trained()
        n_clients = len(ctx.client_ids)
        n_samples = features.shape[0]
        scheme: GatingScheme = routing_scheme(method.routing)
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
        # Gate scores only for the samples each client is queried on: every client's scores on
        # the whole test set would be clients^2 x test numbers.
        route = scheme.serving(self._stage(method, result.log), queried_samples(queries, n_clients))
        model = ServingModel(
            features=features,
            expert_probs=expert_probs,
            scores=route.scores,
            fe_flops=ctx.spec.forward_flops("extractor") + ctx.spec.forward_flops("gate"),
            expert_flops=ctx.spec.forward_flops("expert"),
            samples=route.samples,
        )
        ctx.progress.stage(method.name, f"serving {len(queries)} queries")
        log = ctx.recorder.serving(method.name)
        world = ctx.world(log, start_s=start)
        estimator = None
        if route.latency_weight > 0:
            service_mean = [
                world.devices.duration_s(client_node(j), model.expert_flops) for j in ctx.client_ids
            ]
            estimator = DelayEstimator(
                nominal_round_trips(
                    ctx.make_network,
                    n_clients,
                    payload_bytes(features[0]),
                    payload_bytes(expert_probs[0, 0]),
                    service_mean,
                    route.experts,
                )
            )
        settings = ServingSettings(
            top_k=route.top_k,
            deadline_s=None if cfg.deadline_ms is None else cfg.deadline_ms / 1e3,
            latency_weight=route.latency_weight,
            service=cfg.service,
        )
        rngs = [
            numpy_rng(ctx.scenario.seed, "inference", "service", method.name, j)
            for j in ctx.client_ids
        ]
        run = serve(world, queries, model, settings, estimator=estimator, service_rngs=rngs)
        log.mark_stage("inference", run.t_start_s, run.t_end_s)
        log.finish(run.t_end_s)
        figures, rows = summarise(run, expert_probs, ev.test_y)
        ctx.recorder.record_queries(method.name, rows)
        return figures
