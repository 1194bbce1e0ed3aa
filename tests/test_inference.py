"""The serving simulation against theory and hand computations, on hand-built worlds.

Each world has known device speeds (FLOP/s) and either an ideal network (transfers take no time)
or a star topology with known bandwidth and latency, so every latency can be written down.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nmoe_sim.config import ScenarioError, load_scenario
from nmoe_sim.engine import build_population, run_scenario
from nmoe_sim.gating.own_expert import OwnExpert
from nmoe_sim.inference import (
    DelayEstimator,
    Query,
    Router,
    ServingModel,
    ServingSettings,
    nominal_round_trips,
    poisson_queries,
    queried_samples,
    serve,
    summarise,
)
from nmoe_sim.models.gate import mix, top_k_weights
from nmoe_sim.network.channel import IdealNetwork, NetworkModel
from nmoe_sim.network.devices import SERVER, DeviceProfile, client_node
from nmoe_sim.network.flows import FlowNetwork
from nmoe_sim.network.topology import star
from nmoe_sim.network.transports import TcpTransport
from nmoe_sim.report.build import build_report
from nmoe_sim.seeds import numpy_rng
from nmoe_sim.sweep import PointOutcome, sweep_rows
from nmoe_sim.telemetry.records import Recorder
from nmoe_sim.telemetry.schema import QueryRecord, columns
from nmoe_sim.world import World

FEATURE_DIM = 16  # float32: 64 bytes of features per query
CLASSES = 10  # float32: 40 bytes per expert output
SAMPLES = 50


class _NoBackend:
    """Serving computes nothing on the backend: its outputs are known before the clock runs."""

    def submit(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("the serving stage must not submit tasks")


def make_world(
    network: NetworkModel, speeds: dict[int, float], start_s: float = 0.0
) -> tuple[World, Recorder]:
    recorder = Recorder()
    log = recorder.serving("m")
    world = World.create(
        start_s=start_s,
        network=network,
        devices=DeviceProfile({client_node(c): s for c, s in speeds.items()} | {SERVER: 1.0}),
        backend=_NoBackend(),  # type: ignore[arg-type]
        log=log,
        recorder=recorder,
        seed=0,
    )
    return world, recorder


def make_model(
    scores: list[np.ndarray], fe_flops: float = 0.0, expert_flops: float = 1.0, seed: int = 0
) -> ServingModel:
    experts = scores[0].shape[1]
    gen = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(SAMPLES, experts, CLASSES, generator=gen), dim=-1)
    return ServingModel(
        features=torch.randn(SAMPLES, FEATURE_DIM, generator=gen),
        expert_probs=probs,
        scores=scores,
        fe_flops=fe_flops,
        expert_flops=expert_flops,
    )


def random_scores(clients: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(SAMPLES, clients)) for _ in range(clients)]


def to_expert(clients: int, expert: int) -> list[np.ndarray]:
    """Every client's gate puts expert `expert` first."""
    out = []
    for _ in range(clients):
        s = np.zeros((SAMPLES, clients))
        s[:, expert] = 1.0
        out.append(s)
    return out


def star_network(clients: int, mbps: float, latency_ms: float) -> FlowNetwork:
    return FlowNetwork(star(clients, mbps, latency_ms))


def queries_for(clients: list[int], rate: float, per_client: int, seed: int = 0) -> list[Query]:
    pools = [np.arange(SAMPLES)] * len(clients)
    return poisson_queries(seed, clients, pools, rate_qps=rate, per_client=per_client)


def service_rngs(n: int, name: str = "m") -> list[np.random.Generator]:
    return [numpy_rng(0, "inference", "service", name, j) for j in range(n)]


# --- theory -----------------------------------------------------------------------------------


def test_single_expert_host_is_an_mm1_queue() -> None:
    """Four clients send Poisson queries (12.5 /s each, so lambda = 50 /s) to the one expert on
    c0, which serves them in exponential time of mean 10 ms (mu = 100 /s); the network and the
    clients' own compute take no time. Mean latency = mean sojourn of M/M/1 = 1 / (mu - lambda)."""
    lam, mu = 50.0, 100.0
    senders = [1, 2, 3, 4]
    world, _ = make_world(IdealNetwork(), {0: mu, 1: 1e9, 2: 1e9, 3: 1e9, 4: 1e9})
    model = make_model(to_expert(5, 0), fe_flops=0.0, expert_flops=1.0)
    queries = queries_for(senders, lam / len(senders), per_client=10_000, seed=7)
    run = serve(
        world,
        queries,
        model,
        ServingSettings(top_k=1, service="exponential"),
        service_rngs=service_rngs(5),
    )
    latency = np.array([o.latency_s for o in run.outcomes])
    theory = 1.0 / (mu - lam)
    assert len(latency) == 40_000
    assert latency.mean() == pytest.approx(theory, rel=0.05)
    # Utilisation of the host is rho = lambda / mu; the sojourn time is exponential with rate
    # mu - lambda, so its median is ln 2 / (mu - lambda).
    summary, _ = summarise(run, model.expert_probs, torch.zeros(SAMPLES, dtype=torch.long))
    assert summary.expert_utilisation[0] == pytest.approx(lam / mu, rel=0.05)
    assert summary.latency_p50_ms == pytest.approx(1e3 * np.log(2) * theory, rel=0.05)
    assert summary.expert_requests == [40_000, 0, 0, 0, 0]


def test_deterministic_service_takes_flops_over_speed() -> None:
    """Queries far apart on an ideal network: latency = FE time + expert time on its host."""
    world, _ = make_world(IdealNetwork(), {0: 1000.0, 1: 200.0})
    model = make_model(to_expert(2, 1), fe_flops=3.0, expert_flops=4.0)
    queries = [Query(0, 0, 5, 1.0), Query(1, 1, 6, 2.0)]
    run = serve(world, queries, model, ServingSettings(top_k=1))
    assert run.outcomes[0].latency_s == pytest.approx(3 / 1000 + 4 / 200)
    assert run.outcomes[1].latency_s == pytest.approx(3 / 200 + 4 / 200)


def test_a_busy_expert_makes_later_requests_wait() -> None:
    """Two queries at the same instant to the same expert: the second waits for the first."""
    world, _ = make_world(IdealNetwork(), {0: 1e9, 1: 1e9, 2: 10.0})
    model = make_model(to_expert(3, 2), expert_flops=1.0)  # 100 ms per answer
    run = serve(world, [Query(0, 0, 1, 0.0), Query(1, 1, 2, 0.0)], model, ServingSettings(1))
    assert [o.latency_s for o in run.outcomes] == pytest.approx([0.1, 0.2])


def test_single_query_on_an_idle_star_takes_the_analytic_time() -> None:
    """c0 asks c1's expert over a star (8 Mbps = 1 byte per microsecond, 3 ms per link): FE time
    + path latency (2 links) + 64 B features + service + path latency + 40 B output."""
    world, recorder = make_world(star_network(2, 8.0, 3.0), {0: 1e6, 1: 2e6}, start_s=5.0)
    model = make_model(to_expert(2, 1), fe_flops=500.0, expert_flops=1000.0)
    run = serve(world, [Query(0, 0, 3, 6.0)], model, ServingSettings(top_k=1))
    fe, service = 500 / 1e6, 1000 / 2e6
    expected = fe + (0.006 + 64e-6) + service + (0.006 + 40e-6)
    (outcome,) = run.outcomes
    assert outcome.latency_s == pytest.approx(expected, rel=1e-9)
    assert outcome.t_done_s == pytest.approx(6.0 + expected, rel=1e-12)
    assert outcome.bytes == 64 + 40
    rows = recorder.trace_rows()
    assert [(r["kind"], r["src"], r["dst"], r["stage"], r["round"]) for r in rows] == [
        ("features", "c0", "c1", "inference", 0),
        ("expert_out", "c1", "c0", "inference", 0),
    ]
    assert rows[0]["t_start_s"] == pytest.approx(6.0 + fe)
    assert rows[0]["path"] == "c0>cloud>c1"


def test_top1_own_expert_moves_zero_bytes() -> None:
    clients = 3
    world, recorder = make_world(star_network(clients, 10.0, 5.0), dict.fromkeys(range(3), 1e6))
    scores = [np.tile(OwnExpert().weights(c, clients), (SAMPLES, 1)) for c in range(clients)]
    model = make_model(scores, fe_flops=100.0)
    queries = queries_for(list(range(clients)), 20.0, 200)
    run = serve(world, queries, model, ServingSettings(top_k=1))
    summary, rows = summarise(run, model.expert_probs, torch.zeros(SAMPLES, dtype=torch.long))
    assert recorder.trace_rows() == []
    assert summary.bytes_total == 0 and summary.bytes_per_query == 0
    assert summary.own_expert_only_fraction == 1.0
    assert summary.expert_requests == [200, 200, 200]
    # Idle devices: FE (100 us) + own expert (1 us); queries of one client rarely overlap.
    assert summary.latency_p50_ms == pytest.approx(0.101)
    assert all(r.experts == str(r.client) for r in rows)


def test_deadline_shorter_than_any_round_trip_answers_from_the_own_expert() -> None:
    """Every remote round trip takes >= 20 ms (2 links of 5 ms each way); with a 5 ms deadline
    only the own expert can answer: when the gate picked it, it is the whole mixture; when it did
    not, the client waits for it after the deadline."""
    clients = 4
    world, _ = make_world(star_network(clients, 10.0, 5.0), dict.fromkeys(range(clients), 1e6))
    model = make_model(random_scores(clients), fe_flops=100.0, expert_flops=1.0)
    queries = queries_for(list(range(clients)), 10.0, 100)
    run = serve(world, queries, model, ServingSettings(top_k=2, deadline_s=0.005))
    summary, rows = summarise(run, model.expert_probs, torch.zeros(SAMPLES, dtype=torch.long))
    assert summary.own_expert_only_fraction == 1.0
    assert all(o.answered == (o.query.client,) for o in run.outcomes)
    remote = [o for o in run.outcomes if set(o.chosen) - {o.query.client}]
    assert len(remote) == len(run.outcomes)  # top-2 of 4: every query asks a remote expert
    assert summary.deadline_misses == len(remote)
    assert summary.late_expert_answers == sum(
        len(set(o.chosen) - {o.query.client}) for o in run.outcomes
    )
    for o in run.outcomes:
        if o.query.client in o.chosen:  # own answer back in 101 us, the client waits out 5 ms
            assert o.latency_s == pytest.approx(0.005)
            assert not o.fallback
        else:  # nothing back at 5 ms: the own expert is asked then
            assert o.fallback
            assert o.latency_s == pytest.approx(0.005 + 1e-6, abs=1e-7)
    # The late answers still crossed the network: their bytes are counted.
    assert summary.bytes_total > 0
    assert max(summary.latency_p99_ms, max(r.latency_ms for r in rows)) < 5.1


def test_generous_deadline_changes_nothing() -> None:
    clients = 3

    def once(deadline: float | None) -> list:
        world, _ = make_world(star_network(clients, 10.0, 5.0), dict.fromkeys(range(3), 1e6))
        model = make_model(random_scores(clients), fe_flops=100.0)
        run = serve(
            world,
            queries_for(list(range(clients)), 10.0, 50),
            model,
            ServingSettings(top_k=2, deadline_s=deadline),
        )
        return [(o.answered, o.t_done_s, o.missed) for o in run.outcomes]

    assert once(None) == once(10.0)


def test_bytes_per_query_is_the_inference_trace_over_the_queries() -> None:
    clients = 4
    world, recorder = make_world(star_network(clients, 2.0, 1.0), dict.fromkeys(range(4), 1e6))
    model = make_model(random_scores(clients), fe_flops=1000.0)
    queries = queries_for(list(range(clients)), 50.0, 100)
    run = serve(world, queries, model, ServingSettings(top_k=2))
    summary, rows = summarise(run, model.expert_probs, torch.zeros(SAMPLES, dtype=torch.long))
    trace = pd.DataFrame(recorder.trace_rows())
    assert set(trace["kind"]) == {"features", "expert_out"}
    assert set(trace["stage"]) == {"inference"}
    remote_asks = sum(len(set(o.chosen) - {o.query.client}) for o in run.outcomes)
    assert len(trace) == 2 * remote_asks
    # Conservation: the figures are the trace's rows, summed.
    assert summary.bytes_total == trace["size_bytes"].sum() == remote_asks * (64 + 40)
    assert summary.bytes_per_query == pytest.approx(trace["size_bytes"].sum() / len(queries))
    # A query's bytes (its trace rows, by `round`) are 64 B out and 40 B back per remote expert.
    for o, r in zip(run.outcomes, rows, strict=True):
        assert r.bytes == o.bytes == len(set(o.chosen) - {o.query.client}) * (64 + 40)


def test_congested_links_raise_the_tail() -> None:
    """The same queries over a slower star: transfers queue on the links, p99 rises."""

    def p99(mbps: float) -> float:
        world, _ = make_world(star_network(4, mbps, 2.0), dict.fromkeys(range(4), 1e9))
        model = make_model(random_scores(4), fe_flops=0.0)
        run = serve(world, queries_for(list(range(4)), 200.0, 200), model, ServingSettings(2))
        summary, _ = summarise(run, model.expert_probs, torch.zeros(SAMPLES, dtype=torch.long))
        return summary.latency_p99_ms

    slow, fast = p99(0.5), p99(50.0)
    assert slow > fast > 8.0  # at least the 4 links' latency


def test_mixture_without_deadline_matches_the_evaluated_routing() -> None:
    """No deadline, no penalty: each query's prediction is the gate's top-k mixture evaluated
    on its sample, exactly what the training-time evaluation scores."""
    clients = 4
    world, _ = make_world(IdealNetwork(), dict.fromkeys(range(clients), 1e6))
    scores = random_scores(clients)
    model = make_model(scores)
    labels = torch.randint(0, CLASSES, (SAMPLES,), generator=torch.Generator().manual_seed(3))
    queries = queries_for(list(range(clients)), 10.0, 100)
    run = serve(world, queries, model, ServingSettings(top_k=2))
    summary, rows = summarise(run, model.expert_probs, labels)
    expected = [
        mix(top_k_weights(torch.as_tensor(s, dtype=torch.float32), 2), model.expert_probs).argmax(1)
        for s in scores
    ]
    want = [bool(expected[r.client][r.sample] == labels[r.sample]) for r in rows]
    assert [r.correct for r in rows] == want
    assert summary.accuracy == pytest.approx(np.mean(want))


# --- routing ----------------------------------------------------------------------------------


def test_router_takes_the_top_k_and_softmaxes_the_kept_scores() -> None:
    s = np.array([[0.0, 2.0, 1.0, -1.0]])
    experts, weights = Router([s], top_k=2).choose(0, 0)
    assert experts == (1, 2)
    assert weights == pytest.approx((np.e / (np.e + 1), 1 / (np.e + 1)))
    # Ties go to the lower expert index.
    assert Router([np.zeros((1, 3))], top_k=2).choose(0, 0)[0] == (0, 1)
    with pytest.raises(ValueError, match="top_k"):
        Router([s], top_k=5)
    with pytest.raises(ValueError, match="DelayEstimator"):
        Router([s], top_k=1, latency_weight=1.0)


def test_latency_penalty_picks_the_nearer_expert_but_keeps_the_gate_weights() -> None:
    s = np.array([[0.0, 2.0, 1.5]])
    est = DelayEstimator(np.array([[0.001, 0.050, 0.002]]))  # seconds
    experts, weights = Router([s], 2, latency_weight=0.1, estimator=est).choose(0, 0)
    # Penalised: 0 - 0.1, 2 - 5, 1.5 - 0.2: experts 2 then 0; weights from the raw 1.5 and 0.
    assert experts == (2, 0)
    assert weights == pytest.approx(tuple(np.exp([1.5, 0.0]) / np.exp([1.5, 0.0]).sum()))


def test_delay_estimator_is_an_ewma_of_observed_round_trips() -> None:
    est = DelayEstimator(np.array([[0.0, 0.010]]), alpha=0.5)
    est.observe(0, 1, 0.030)
    assert est.expected_s(0)[1] == pytest.approx(0.020)
    est.observe(0, 1, 0.030)
    assert est.expected_s(0)[1] == pytest.approx(0.025)
    with pytest.raises(ValueError):
        DelayEstimator(np.zeros((1, 1)), alpha=0.0)


def test_nominal_round_trips_on_an_idle_star() -> None:
    trips = nominal_round_trips(
        lambda: star_network(3, 8.0, 3.0), 3, features_bytes=64, output_bytes=40,
        service_mean_s=[0.001, 0.002, 0.003],
    )  # fmt: skip
    assert trips[0, 0] == pytest.approx(0.001)
    assert trips[0, 2] == pytest.approx(0.006 + 64e-6 + 0.003 + 0.006 + 40e-6)
    assert trips[2, 1] == pytest.approx(0.012 + 104e-6 + 0.002)


def test_nominal_round_trips_over_tcp_leave_out_the_handshake() -> None:
    # Persistent connections: the nominal round trip is the steady one (headers, and the packet
    # serialized on each of the two hops through the hub), not the first one's handshake.
    bps = 8e6
    trips = nominal_round_trips(
        lambda: FlowNetwork(star(3, 8.0, 3.0), transport=TcpTransport()), 3,
        features_bytes=64, output_bytes=40, service_mean_s=[0.001, 0.002, 0.003],
    )  # fmt: skip
    there, back = 8 * (64 + 66), 8 * (40 + 66)  # payload + IP/TCP/timestamps + Ethernet
    assert trips[0, 2] == pytest.approx(0.006 + 2 * there / bps + 0.003 + 0.006 + 2 * back / bps)


def test_latency_aware_routing_stays_local_when_remote_is_slow() -> None:
    """A heavy penalty on a 10 ms star: every client asks its own expert first (its nominal
    round trip is its service time only), so top-1 moves no bytes at all."""
    clients = 3
    world, recorder = make_world(star_network(clients, 10.0, 5.0), dict.fromkeys(range(3), 1e6))
    model = make_model(random_scores(clients), fe_flops=100.0)
    nominal = nominal_round_trips(lambda: star_network(clients, 10.0, 5.0), 3, 64, 40, [1e-6] * 3)
    est = DelayEstimator(nominal)
    run = serve(
        world,
        queries_for(list(range(clients)), 10.0, 50),
        model,
        ServingSettings(top_k=1, latency_weight=10.0),
        estimator=est,
    )
    assert all(o.chosen == (o.query.client,) for o in run.outcomes)
    assert recorder.trace_rows() == []
    # With k = 2 the second expert is remote: from a wrong start (twice the nominal), the
    # estimator learns the round trips it observes (idle links: the nominal ones).
    world, _ = make_world(star_network(clients, 10.0, 5.0), dict.fromkeys(range(3), 1e6))
    est = DelayEstimator(2 * nominal)
    run = serve(
        world,
        queries_for(list(range(clients)), 10.0, 50),
        model,
        ServingSettings(top_k=2, latency_weight=10.0),
        estimator=est,
    )
    asked = np.zeros((clients, clients), dtype=int)
    for o in run.outcomes:
        for j in o.chosen:
            asked[o.query.client, j] += 1
    busiest = np.unravel_index(np.argmax(asked - 1000 * np.eye(clients)), asked.shape)
    assert asked[busiest] >= 15
    assert est.expected[busiest] == pytest.approx(nominal[busiest], rel=0.01)
    never = asked == 0
    assert np.array_equal(est.expected[never], 2 * nominal[never])


# --- workload, determinism --------------------------------------------------------------------


def test_poisson_queries_are_seeded_and_follow_the_rate() -> None:
    pools = [np.arange(10, 20), np.arange(30, 35)]
    a = poisson_queries(4, [0, 1], pools, rate_qps=5.0, per_client=4000, start_s=2.0)
    b = poisson_queries(4, [0, 1], pools, rate_qps=5.0, per_client=4000, start_s=2.0)
    assert a == b
    assert [q.qid for q in a] == list(range(8000))
    assert all(x.t_arrival_s <= y.t_arrival_s for x, y in itertools.pairwise(a))
    for client, pool in enumerate(pools):
        mine = [q for q in a if q.client == client]
        assert len(mine) == 4000
        assert {q.sample for q in mine} == set(pool.tolist())
        last = max(q.t_arrival_s for q in mine)
        assert (last - 2.0) / 4000 == pytest.approx(1 / 5.0, rel=0.05)
    c = poisson_queries(5, [0, 1], pools, rate_qps=5.0, per_client=4000, start_s=2.0)
    assert c != a


def test_same_seed_same_serving() -> None:
    def once() -> tuple:
        world, recorder = make_world(star_network(4, 1.0, 2.0), dict.fromkeys(range(4), 1e5))
        model = make_model(random_scores(4), fe_flops=100.0, expert_flops=100.0)
        run = serve(
            world,
            queries_for(list(range(4)), 30.0, 100),
            model,
            ServingSettings(top_k=2, deadline_s=0.02, service="exponential"),
            service_rngs=service_rngs(4),
        )
        return [(o.answered, o.t_done_s, o.bytes) for o in run.outcomes], recorder.trace_rows()

    assert once() == once()


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("inference.rate_qps=0", "inference.rate_qps"),
        ("inference.queries_per_client=0", "inference.queries_per_client"),
        ("inference.deadline_ms=-5", "inference.deadline_ms"),
        ("inference.latency_weight=-1", "inference.latency_weight"),
        ("inference.service=gamma", "inference.service"),
        ("inference.top_k=4", "inference.top_k: 4 exceeds clients.count (3)"),
        ("inference.rate=3", "inference.rate: unknown key; allowed here: enabled, rate_qps"),
    ],
)
def test_inference_settings_are_validated(tmp_path: Path, override: str, needle: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: t\nclients: {count: 3}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, [override])
    assert needle in " ".join(str(info.value).split())


def test_inference_is_off_by_default_and_reads_its_keys(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: t\n")
    assert load_scenario(path).inference.enabled is False
    sc = load_scenario(path, ["inference={enabled: true, deadline_ms: 50, service: exponential}"])
    assert (sc.inference.enabled, sc.inference.deadline_ms, sc.inference.service) == (
        True,
        50,
        "exponential",
    )


# --- through the engine -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from test_engine import tiny_scenario

    scenario = tiny_scenario(
        methods=["nmoe/fedsc/fedgate", "nmoe/fedsc/own_expert", "nmoe/fedsc/uniform"],
        network={"topology": "star", "bandwidth_mbps": 10, "latency_ms": 5},
        inference={"enabled": True, "rate_qps": 20, "queries_per_client": 100},
    )
    out = tmp_path_factory.mktemp("runs") / "served"
    return out, run_scenario(scenario, out)


def test_engine_writes_inference_figures_rows_and_trace(served: tuple[Path, dict]) -> None:
    out, summary = served
    methods = summary["methods"]
    keys = {
        "accuracy",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "bytes_per_query",
        "own_expert_only_fraction",
        "expert_utilisation",
        "deadline_misses",
    }
    for m in methods.values():
        assert keys <= set(m["inference"])
        assert m["inference"]["queries"] == 4 * 100
        assert len(m["inference"]["expert_utilisation"]) == 4
    assert json.loads((out / "summary.json").read_text()) == summary
    rows = pd.read_csv(out / "inference.csv")
    assert list(rows.columns) == list(columns(QueryRecord))
    assert rows.groupby("method").size().to_dict() == dict.fromkeys(methods, 400)
    trace = pd.read_csv(out / "trace.csv")
    serving = trace[trace["stage"] == "inference"]
    assert set(serving["kind"]) == {"features", "expert_out"}
    for name, m in methods.items():
        own_rows = serving[serving["method"] == name]
        assert own_rows["size_bytes"].sum() == m["inference"]["bytes_total"]
        assert m["inference"]["bytes_per_query"] == pytest.approx(
            own_rows["size_bytes"].sum() / 400
        )
        # Serving starts when training ended; training totals leave serving out.
        assert (own_rows["t_start_s"] >= m["sim_time_s"]).all()
        assert m["inference"]["t_start_s"] == m["sim_time_s"]
        lineage = trace[
            trace["method"].isin([name, "nmoe/fedsc"]) & (trace["stage"] != "inference")
        ]
        assert m["bytes_total"] == lineage["size_bytes"].sum()
        assert "inference" not in m["stages"]
        mine = rows[rows["method"] == name]
        assert m["inference"]["accuracy"] == pytest.approx(mine["correct"].mean())
        assert m["inference"]["latency_p99_ms"] == pytest.approx(
            np.percentile(mine["latency_ms"], 99)
        )
    own = methods["nmoe/fedsc/own_expert"]["inference"]
    assert own["bytes_per_query"] == 0 and own["own_expert_only_fraction"] == 1.0
    uniform = methods["nmoe/fedsc/uniform"]["inference"]
    # 16 float32 features out and 10 float32 probabilities back, to each of 3 remote experts.
    assert uniform["bytes_per_query"] == 3 * (16 * 4 + 10 * 4)
    assert uniform["expert_requests"] == [400] * 4


def test_report_and_sweep_read_the_inference_results(served: tuple[Path, dict]) -> None:
    out, summary = served
    folder = build_report(out)
    assert (folder / "inference_latency_cdf.png").is_file()
    assert (folder / "inference_expert_load.png").is_file()
    table = sweep_rows([_Point("p", {"network.bandwidth_mbps": 10})], [PointOutcome(summary)])
    assert {"inference_accuracy", "inference_latency_p99_ms", "inference_bytes_per_query"} <= set(
        table.columns
    )
    gate = table[table["method"] == "nmoe/fedsc/fedgate"].iloc[0]
    assert (
        gate["inference_latency_p99_ms"]
        == summary["methods"]["nmoe/fedsc/fedgate"]["inference"]["latency_p99_ms"]
    )


class _Point:
    def __init__(self, name: str, settings: dict) -> None:
        self.name = name
        self.settings = settings


def test_global_queries_and_a_short_deadline_through_the_engine(tmp_path: Path) -> None:
    """`queries_from: global` draws from the whole test set; a 1 ms deadline on a 5 ms star
    leaves every uniform query to the own expert, the remote answers arriving late."""
    from test_engine import tiny_scenario

    scenario = tiny_scenario(
        methods=["nmoe/fedsc/uniform"],
        network={"topology": "star", "bandwidth_mbps": 10, "latency_ms": 5},
        inference={
            "enabled": True,
            "rate_qps": 20,
            "queries_per_client": 50,
            "queries_from": "global",
            "deadline_ms": 1.0,
        },
    )
    summary = run_scenario(scenario, tmp_path / "run")
    inf = summary["methods"]["nmoe/fedsc/uniform"]["inference"]
    assert inf["own_expert_only_fraction"] == 1.0
    assert inf["deadline_misses"] == 200
    assert inf["late_expert_answers"] == 200 * 3
    assert inf["latency_p99_ms"] == pytest.approx(1.0)
    rows = pd.read_csv(tmp_path / "run" / "inference.csv")
    assert (rows["answered"].astype(str) == rows["client"].astype(str)).all()
    population = build_population(scenario)
    for client, part in enumerate(population.test_parts):
        drawn = set(rows.loc[rows["client"] == client, "sample"])
        assert not drawn <= set(part.tolist())  # not confined to the client's own split


def test_queried_samples_are_each_clients_distinct_samples_sorted() -> None:
    queries = [
        Query(0, 1, 7, 0.1),
        Query(1, 0, 3, 0.2),
        Query(2, 1, 2, 0.3),
        Query(3, 1, 7, 0.4),
    ]
    asked = queried_samples(queries, 3)
    assert [a.tolist() for a in asked] == [[3], [2, 7], []]
