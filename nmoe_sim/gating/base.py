"""What a gating scheme says, and the stage-3 context every scheme works in.

A scheme trains (or fixes) each client's routing over the experts. `LearnedGate` schemes run
stage 3 on the network: they exchange expert outputs, then train gates with the client task
`fit_gate` in a federation pattern of their own. `FixedRouting` schemes are references over
the same experts with no stage 3 at all. Which experts a client may use at all
(`stages.gate.remote_experts`) is decided here, in `GateStage.experts`, for every scheme alike.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from nmoe_sim.gating.reach import reachable_experts
from nmoe_sim.learning import client as tasks
from nmoe_sim.learning.client import GateSettings, Weights
from nmoe_sim.learning.evaluate import gate_routing, gate_scores, mixture_predictions
from nmoe_sim.models.gate import mask_scores
from nmoe_sim.models.spec import TRAIN_FLOPS_FACTOR
from nmoe_sim.network.devices import client_node
from nmoe_sim.pipelines.context import RunContext
from nmoe_sim.telemetry.records import MethodLog
from nmoe_sim.world import World


@dataclass(frozen=True)
class ServingRoute:
    """How a method routes served queries: per client [samples, experts] scores, the experts
    asked per query, and how much expected delay counts against an expert's score."""

    scores: list[np.ndarray]
    top_k: int
    latency_weight: float
    # Per client, the experts it may ask (the others score -inf); None: every expert.
    experts: list[tuple[int, ...]] | None = None
    # Per client, the test samples its rows of `scores` are for; None: every sample, in order.
    samples: Sequence[np.ndarray] | None = None


@dataclass
class GateStage:
    """One NMoE method's stage 3: its extractor pipeline's outputs and, for schemes that train,
    the world (clock, channel, devices) it runs in."""

    ctx: RunContext
    pipeline: str  # the extractor pipeline, e.g. "nmoe/fedsc": its client state holds features
    method: str  # e.g. "nmoe/fedsc/fedgate": the key of every client's gate
    features: torch.Tensor  # [test, feature_dim] of the global test set
    expert_probs: torch.Tensor  # [test, experts, classes]
    log: MethodLog
    world_: World | None = field(default=None, repr=False)
    reach_: dict[int, tuple[int, ...]] = field(default_factory=dict, repr=False)

    @property
    def world(self) -> World:
        if self.world_ is None:
            raise RuntimeError(
                f"{self.method}: this stage has no world (the scheme does not train)"
            )
        return self.world_

    @property
    def num_clients(self) -> int:
        return len(self.ctx.client_ids)

    def experts(self, cid: int) -> tuple[int, ...] | None:
        """The experts client `cid` may route to: its own plus its seeded sample of
        `stages.gate.remote_experts` others, sorted; None: every expert (the default)."""
        remote = self.ctx.scenario.stages.gate.remote_experts
        if remote is None:
            return None
        if cid not in self.reach_:
            seed = self.ctx.scenario.seed
            self.reach_[cid] = reachable_experts(seed, self.pipeline, cid, self.num_clients, remote)
        return self.reach_[cid]

    def all_experts(self) -> list[tuple[int, ...]] | None:
        """`experts` of every client, in client order; None: every client reaches every expert."""
        if self.ctx.scenario.stages.gate.remote_experts is None:
            return None
        return [e for e in map(self.experts, self.ctx.client_ids) if e is not None]

    def remote_experts(self, cid: int) -> list[int]:
        """The other clients whose experts `cid` exchanges features with."""
        experts = self.experts(cid)
        return [j for j in (self.ctx.client_ids if experts is None else experts) if j != cid]

    def plan(self, cid: int, incoming: Weights | None, step: int) -> tuple:
        """The gate training task of client `cid` at `step` (a driver's `LocalPlan`)."""
        ctx, cfg = self.ctx, self.ctx.scenario.stages.gate
        settings = GateSettings(
            cfg.top_k, cfg.routing_noise, cfg.load_balance, cfg.class_balanced, cfg.dense_loss
        )
        flops = TRAIN_FLOPS_FACTOR * ctx.spec.forward_flops("gate") * cfg.local_epochs
        seed = ctx.seed(self.method, "gate", step, cid)
        args = (
            self.pipeline,
            self.method,
            incoming,
            cfg.optim,
            cfg.local_epochs,
            settings,
            seed,
            self.experts(cid),
        )
        return flops * ctx.num_train[cid], tasks.fit_gate, args

    def client_gates(
        self, fallback: Weights | None = None, shared: Weights | None = None
    ) -> Iterator[Weights]:
        """Each client's gate, in client order, fetched as it is read (each gate scores every
        expert, so n gates at once are quadratic in the clients); a client holding no gate yet
        (mid random walk, or not yet selected by FedGate) gets `fallback`. `shared` (FedGate's
        current global trunk) replaces that part of every client's gate, as at the end."""
        for c in self.ctx.client_ids:
            gate = self.ctx.backend.submit(c, tasks.gate_weights, self.method).result()
            gate = fallback if gate is None else gate
            if gate is None:
                raise RuntimeError(f"client {c} holds no gate for {self.method}")
            yield gate if shared is None else {**gate, **shared}

    def gate_routings(
        self, fallback: Weights | None = None, shared: Weights | None = None
    ) -> Iterator[torch.Tensor]:
        """Each client's top-k gate routing on the test features (see `client_gates`), made as
        it is read: n clients' [test, n] routings at once would be n^2 x test numbers."""
        ctx = self.ctx
        k = ctx.scenario.stages.gate.top_k
        device = torch.device(ctx.device)
        gates = self.client_gates(fallback, shared)
        for c, gate in zip(ctx.client_ids, gates, strict=True):
            yield gate_routing(ctx.spec, gate, self.features, k, device, self.experts(c))

    def evaluate(
        self,
        round_: int,
        loss: float | None,
        fallback: Weights | None = None,
        shared: Weights | None = None,
    ) -> None:
        """Score the clients' gates as they stand after `round_` and record the metric row."""
        ctx = self.ctx
        routings = self.gate_routings(fallback, shared)
        scores = ctx.evaluator.score_each(
            [mixture_predictions(r, self.expert_probs) for r in routings]  # one routing at a time
        )
        self.world.metric("gate", round_, scores.accuracy_global, loss)

    def exchange_expert_outputs(self) -> Generator:
        """Each client sends its train features to each of its remote experts (every other
        client, or its sample of `stages.gate.remote_experts`) once and caches the answers:
        experts are frozen in stage 3, so this is exact and the cheapest protocol. (The own
        expert's outputs were recorded in stage 2.)"""
        ctx, world = self.ctx, self.world
        serve_flops = ctx.spec.forward_flops("expert")

        # Read each client's features once, not once per remote expert.
        features = {
            i: ctx.backend.submit(i, tasks.train_features, self.pipeline).result()
            for i in ctx.client_ids
        }

        def pair(i: int, j: int) -> Generator:
            feats = yield world.channel.send(
                client_node(i), client_node(j), features[i], kind="features", stage="gate", round=0
            )
            probs = yield from world.client_work(
                j, serve_flops * ctx.num_train[i], tasks.serve_expert, self.pipeline, feats
            )
            probs = yield world.channel.send(
                client_node(j), client_node(i), probs, kind="expert_out", stage="gate", round=0
            )
            ctx.backend.submit(i, tasks.store_expert_probs, self.pipeline, j, probs).result()

        procs = [
            world.env.process(pair(i, j)) for i in ctx.client_ids for j in self.remote_experts(i)
        ]
        yield world.env.all_of(procs)


class GatingScheme(Protocol):
    """A gating scheme (registered in GATING_SCHEMES: it trains) or a routing reference (in
    ROUTING_REFERENCES: it does not)."""

    def train(self, stage: GateStage) -> Generator[Any, Any, None]:
        """Stage 3 as a process on `stage.world`'s clock (gating schemes only)."""
        ...

    def routings(self, stage: GateStage) -> Iterator[torch.Tensor]:
        """Each client's [test, experts] mixture weights on the test features, after stage 3, in
        client order, made as they are read (hold one at a time: all are n^2 x test numbers)."""
        ...

    def serving(
        self, stage: GateStage, samples: Sequence[np.ndarray] | None = None
    ) -> ServingRoute:
        """How queries are routed; with `samples`, scores only for the test samples each client
        is queried on (`samples[c]`, sorted), not the whole test set."""
        ...


class LearnedGate:
    """A scheme that trains gates: exchange expert outputs, then `learn`. Afterwards every
    client holds its gate; routings and serving scores come from those gates."""

    def train(self, stage: GateStage) -> Generator[Any, Any, None]:
        stage.ctx.progress.stage(stage.method, "exchanging expert outputs")
        yield from stage.exchange_expert_outputs()
        yield from self.learn(stage)

    def learn(self, stage: GateStage) -> Generator[Any, Any, None]:
        """Train the gates; every client must hold one at the end."""
        raise NotImplementedError

    def routings(self, stage: GateStage) -> Iterator[torch.Tensor]:
        return stage.gate_routings()

    def serving(
        self, stage: GateStage, samples: Sequence[np.ndarray] | None = None
    ) -> ServingRoute:
        ctx = stage.ctx
        device = torch.device(ctx.device)
        scores = []
        for c, gate in zip(ctx.client_ids, stage.client_gates(), strict=True):
            # Scored on the whole test set as in evaluation (the same batches, so the same
            # numbers), then only the client's queried rows are kept.
            score = gate_scores(ctx.spec, gate, stage.features, device)
            if samples is not None:
                score = score[torch.from_numpy(samples[c])]
            experts = stage.experts(c)
            score = score if experts is None else mask_scores(score, torch.tensor(experts))
            scores.append(score.numpy())
        cfg = ctx.scenario.inference
        top_k = cfg.top_k or ctx.scenario.stages.gate.top_k
        return ServingRoute(scores, top_k, cfg.latency_weight, stage.all_experts(), samples)


class FixedRouting:
    """A routing reference: every client's weights are fixed, nothing is trained or sent, and
    serving has no gate whose scores a latency penalty could move."""

    def train(self, stage: GateStage) -> Generator[Any, Any, None]:
        raise RuntimeError(f"{stage.method}: a fixed routing has no stage 3")

    def weights(self, client: int, num_experts: int) -> np.ndarray:
        """Client `client`'s weight on each expert (the same for every input)."""
        raise NotImplementedError

    def reachable_weights(self, stage: GateStage, client: int, num_experts: int) -> np.ndarray:
        """`weights` kept on the experts the client may use (`GateStage.experts`), renormalised:
        a client restricted to a sample cannot mix experts it has no way to reach."""
        w = self.weights(client, num_experts)
        experts = stage.experts(client)
        if experts is None:
            return w
        kept = np.zeros_like(w)
        kept[list(experts)] = w[list(experts)]
        return kept / kept.sum()

    def routings(self, stage: GateStage) -> Iterator[torch.Tensor]:
        n_test, n_experts = stage.expert_probs.shape[:2]
        for i in range(stage.num_clients):
            w = self.reachable_weights(stage, i, n_experts)
            yield torch.from_numpy(w).float().expand(n_test, -1).clone()

    def serving(
        self, stage: GateStage, samples: Sequence[np.ndarray] | None = None
    ) -> ServingRoute:
        # The fixed weights serve as scores: the top k that covers every non-zero weight keeps
        # them, and equal kept scores mix equally, as the weights say.
        n_test, n_experts = stage.expert_probs.shape[:2]
        weights = [self.reachable_weights(stage, i, n_experts) for i in range(stage.num_clients)]
        top_k = max(int(np.count_nonzero(w)) for w in weights)
        rows = [n_test if samples is None else len(samples[i]) for i in range(len(weights))]
        tiled = [np.tile(w, (n, 1)) for w, n in zip(weights, rows, strict=True)]
        return ServingRoute(tiled, top_k, 0.0, stage.all_experts(), samples)
