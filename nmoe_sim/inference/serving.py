"""The serving simulation: SimPy processes for every query on one world's clock.

A query arriving at client c:

1. runs c's feature extractor and gate on c's device (FLOPs over its speed, queued FIFO behind
   whatever else the device is doing, expert requests from other clients included);
2. asks the top-k experts its router picks: the own expert is computed on c's device (no
   network); a remote expert j gets the features over the channel (trace kind `features`),
   queues on j's device for its service time, and sends its output back (`expert_out`);
3. is answered when every asked expert is back, or, with a deadline, at `arrival + deadline`
   with the experts back by then (the rest are left out; their late answers still arrive and
   are counted, the host never learns of the deadline). If none is back then, the client waits
   for its own expert (asking it now if the gate had not): every query is answered.

Each device is the world's capacity-one resource, the same device model as in training, so a
busy expert makes later requests wait. Nothing here looks ahead: routing uses what the client
has observed, the deadline is a timer, and an answer counts only once its arrival event fired.

Bytes are never counted here: every message goes through the world's channel with the query id
as its trace row's `round`, and a query's bytes are the sum of its trace rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from nmoe_sim.clock import run_clock
from nmoe_sim.inference.routing import DelayEstimator, Router
from nmoe_sim.inference.workload import Query, ServingModel
from nmoe_sim.network.devices import client_node
from nmoe_sim.world import World

STAGE = "inference"


@dataclass(frozen=True)
class ServingSettings:
    top_k: int
    deadline_s: float | None = None
    latency_weight: float = 0.0  # score units per ms of expected round trip
    service: Literal["deterministic", "exponential"] = "deterministic"


@dataclass(frozen=True)
class QueryOutcome:
    query: Query
    chosen: tuple[int, ...]  # experts asked, best first
    weights: tuple[float, ...]  # the gate's mixture weights of `chosen`
    answered: tuple[int, ...]  # experts in the mixture
    t_done_s: float
    bytes: int  # its trace rows' bytes: all it put on the network (late answers included)
    missed: int  # asked experts left out by the deadline
    fallback: bool  # nothing was back by the deadline: the own expert answered after it

    @property
    def latency_s(self) -> float:
        return self.t_done_s - self.query.t_arrival_s

    def mixture_weights(self) -> dict[int, float]:
        """Weights of the answered experts, renormalised to sum to one."""
        given = dict(zip(self.chosen, self.weights, strict=True))
        kept = {j: given.get(j, 0.0) for j in self.answered}
        total = sum(kept.values())
        if total <= 0:  # the own expert answered for a gate that had not picked it
            return {j: 1.0 / len(kept) for j in kept}
        return {j: w / total for j, w in kept.items()}


@dataclass
class ServingRun:
    outcomes: list[QueryOutcome]
    t_start_s: float
    t_end_s: float  # when the last answer (late ones included) reached its client
    busy_s: np.ndarray  # per expert host: seconds spent serving expert requests
    requests: np.ndarray  # per expert: requests served (late ones included)
    late_answers: int = 0
    bytes_total: int = 0  # the serving stage's trace rows, summed
    estimator: DelayEstimator | None = field(default=None, repr=False)


class _Server:
    def __init__(
        self,
        world: World,
        model: ServingModel,
        settings: ServingSettings,
        router: Router,
        estimator: DelayEstimator | None,
        service_rngs: Sequence[np.random.Generator],
    ) -> None:
        self.world = world
        self.env = world.env
        self.model = model
        self.settings = settings
        self.router = router
        self.estimator = estimator
        self.service_rngs = service_rngs
        experts = model.num_experts
        self.busy_s = np.zeros(experts)
        self.requests = np.zeros(experts, dtype=int)
        # (query, chosen, weights, answered, t_done_s, missed, fallback)
        self.outcomes: list[tuple] = []
        self.late_answers = 0
        self.t_last = self.env.now

    def _service_s(self, expert: int) -> float:
        mean = self.world.devices.duration_s(client_node(expert), self.model.expert_flops)
        if self.settings.service == "exponential" and mean > 0:
            return float(self.service_rngs[expert].exponential(mean))
        return mean

    def _ask(self, query: Query, expert: int) -> Generator:
        """One expert's answer to one query; the process ends when the output is at the client."""
        env, channel = self.env, self.world.channel
        client, t0 = query.client, self.env.now
        here, there = client_node(client), client_node(expert)
        service = self._service_s(expert)
        if expert == client:
            yield from self.world.devices.occupy(there, service)
        else:
            features = self.model.features[query.sample]
            yield channel.send(here, there, features, kind="features", stage=STAGE, round=query.qid)
            yield from self.world.devices.occupy(there, service)
            output = self.model.expert_probs[query.sample, expert]
            yield channel.send(there, here, output, kind="expert_out", stage=STAGE, round=query.qid)
        self.busy_s[expert] += service
        self.requests[expert] += 1
        self.t_last = max(self.t_last, env.now)
        if self.estimator is not None:
            self.estimator.observe(client, expert, env.now - t0)

    def query(self, query: Query) -> Generator:
        env = self.env
        yield env.timeout(query.t_arrival_s - env.now)
        client = query.client
        node = client_node(client)
        yield from self.world.devices.occupy(
            node, self.world.devices.duration_s(node, self.model.fe_flops)
        )
        chosen, weights = self.router.choose(client, query.sample)
        asks = {j: env.process(self._ask(query, j)) for j in chosen}
        everyone = env.all_of(list(asks.values()))
        deadline = self.settings.deadline_s
        if deadline is None:
            yield everyone
        else:
            left = query.t_arrival_s + deadline - env.now
            if left > 0:
                yield everyone | env.timeout(left)
        answered = tuple(j for j in chosen if asks[j].triggered)
        missed = len(chosen) - len(answered)
        self.late_answers += missed
        fallback = not answered
        if fallback:  # wait for the own expert: the one answer that needs no network
            own = asks.get(client)
            if own is None:
                own = env.process(self._ask(query, client))
            yield own
            answered = (client,)
        self.t_last = max(self.t_last, env.now)
        self.outcomes.append((query, chosen, weights, answered, env.now, missed, fallback))


def serve(
    world: World,
    queries: Sequence[Query],
    model: ServingModel,
    settings: ServingSettings,
    *,
    estimator: DelayEstimator | None = None,
    service_rngs: Sequence[np.random.Generator] = (),
) -> ServingRun:
    """Serve every query on `world`'s clock until the last transfer has ended.

    `service_rngs[j]` draws expert j's service times when `settings.service` is exponential.
    `estimator` (required when `settings.latency_weight > 0`) is updated as answers arrive.
    """
    if settings.service == "exponential" and len(service_rngs) < model.num_experts:
        raise ValueError("exponential service needs one random stream per expert")
    router = Router(model.scores, settings.top_k, settings.latency_weight, estimator, model.samples)
    server = _Server(world, model, settings, router, estimator, service_rngs)
    start = world.env.now
    first_row = len(world.log.transfers)

    def driver() -> Generator:
        yield world.env.all_of([world.env.process(server.query(q)) for q in queries])

    world.run(driver())
    run_clock(world.env)  # late answers, still on their way when the last query was answered
    # Read only now, once late answers are in too: this run's trace rows, by query.
    sent = [row for row in world.log.transfers[first_row:] if row.stage == STAGE]
    per_query = Counter[int]()
    for row in sent:
        per_query[row.round] += row.size_bytes
    outcomes = sorted(
        (
            QueryOutcome(q, c, w, a, t, per_query[q.qid], m, f)
            for q, c, w, a, t, m, f in server.outcomes
        ),
        key=lambda o: o.query.qid,
    )
    return ServingRun(
        outcomes=outcomes,
        t_start_s=start,
        t_end_s=server.t_last,
        busy_s=server.busy_s,
        requests=server.requests,
        late_answers=server.late_answers,
        bytes_total=sum(row.size_bytes for row in sent),
        estimator=estimator,
    )
