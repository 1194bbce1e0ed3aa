"""`stages.gate.remote_experts`: each client exchanges with, and routes to, only its own expert
plus a seeded sample of m others, in training, evaluation and serving alike."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from nmoe_sim.config import OptimConfig
from nmoe_sim.engine import run_scenario
from nmoe_sim.gating import routing_scheme
from nmoe_sim.gating.reach import reachable_experts
from nmoe_sim.inference import Router, nominal_round_trips
from nmoe_sim.learning.client import ClientState, GateSettings, fit_gate, store_expert_probs
from nmoe_sim.learning.evaluate import gate_routing
from nmoe_sim.models.spec import ModelSpec
from nmoe_sim.network.devices import client_node
from tests.test_engine import CLIENTS, tiny_scenario
from tests.test_inference import star_network

REMOTE = 1  # of CLIENTS - 1 = 3 others: half of each client's 4 experts are out of reach
GATED = ["nmoe/fedce/fedgate", "nmoe/fedce/rangate"]
METHODS = [*GATED, "nmoe/fedce/uniform"]


def test_sample_is_seeded_per_client_and_never_draws_the_own_expert() -> None:
    n, m = 10, 3
    samples = [reachable_experts(7, "nmoe/fedce", c, n, m) for c in range(n)]
    assert samples == [reachable_experts(7, "nmoe/fedce", c, n, m) for c in range(n)]
    for c, experts in enumerate(samples):
        assert c in experts and len(set(experts)) == m + 1 == len(experts)
        assert list(experts) == sorted(experts) and all(0 <= j < n for j in experts)
    remotes = [frozenset(e) - {c} for c, e in enumerate(samples)]
    assert len(set(remotes)) > 1  # clients draw their own samples
    # Another seed or another pipeline is another stream.
    assert samples != [reachable_experts(8, "nmoe/fedce", c, n, m) for c in range(n)]
    assert samples != [reachable_experts(7, "nmoe/fedsc", c, n, m) for c in range(n)]
    # The shift past the own id reaches every other id: with m = n-1, all experts.
    assert all(reachable_experts(7, "p", c, n, n - 1) == tuple(range(n)) for c in range(n))
    with pytest.raises(ValueError):
        reachable_experts(7, "p", 0, n, n)


def test_gate_trains_and_routes_without_the_outputs_it_never_received() -> None:
    # Client 0 holds outputs of experts 0 and 2 only: the restricted gate trains on them, and
    # the unrestricted one cannot (it needs expert 1's outputs).
    gen = torch.Generator().manual_seed(0)
    n, classes, dim = 64, 3, 4
    spec = ModelSpec("small_cnn", (1, 4, 4), classes, 3, dim, 8, 8, 4)
    state = ClientState(0, spec, torch.zeros(n, 1, 4, 4), torch.randint(0, classes, (n,)))
    state.features["p"] = torch.randn(n, dim, generator=gen)
    for e in (0, 2):
        store_expert_probs(state, "p", e, torch.softmax(torch.randn(n, classes), dim=1))
    optim = OptimConfig(optimizer="adam", lr=1e-2, momentum=0.0, batch_size=16)
    settings = GateSettings(2, 1.0, 0.1, dense_loss=1.0)  # noise + load balance + dense loss too
    with pytest.raises(KeyError):
        fit_gate(state, "p", "all", None, optim, 2, settings, seed=1)
    update = fit_gate(state, "p", "some", None, optim, 2, settings, seed=1, experts=(0, 2))
    assert np.isfinite(update.loss)
    routing = gate_routing(
        spec, update.weights, state.features["p"], 2, torch.device("cpu"), (0, 2)
    )
    assert torch.all(routing[:, 1] == 0)
    assert torch.all(routing[:, [0, 2]] > 0)  # top 2 of the 2 reachable: both, every input
    assert torch.allclose(routing.sum(1), torch.ones(n))


def test_nominal_round_trips_time_only_the_reachable_experts() -> None:
    service = [0.001, 0.002, 0.003]
    full = nominal_round_trips(lambda: star_network(3, 8.0, 3.0), 3, 64, 40, service)
    experts = [(0, 2), (0, 1), (1, 2)]
    some = nominal_round_trips(lambda: star_network(3, 8.0, 3.0), 3, 64, 40, service, experts)
    for c, reach in enumerate(experts):
        for j in range(3):
            # The clock runs on from earlier transfers: equal up to rounding of env.now.
            assert some[c, j] == (pytest.approx(full[c, j], rel=1e-9) if j in reach else np.inf)


def test_fixed_routings_keep_to_the_reachable_experts() -> None:
    reach = {0: (0, 2, 3), 1: (0, 1, 4), 2: (1, 2, 3), 3: (2, 3, 4), 4: (0, 1, 4)}
    stage = SimpleNamespace(
        expert_probs=torch.zeros(2, 5, 3),
        num_clients=5,
        experts=reach.__getitem__,
        all_experts=lambda: list(reach.values()),
    )
    for c, r in enumerate(routing_scheme("uniform").routings(stage)):
        expected = torch.zeros(2, 5)
        expected[:, list(reach[c])] = 1 / 3
        assert torch.allclose(r, expected)
    route = routing_scheme("uniform").serving(stage)
    assert route.top_k == 3 and route.experts == list(reach.values())
    experts, weights = Router(route.scores, route.top_k, 0.0).choose(1, 0)
    assert experts == (0, 1, 4) and np.allclose(weights, 1 / 3)
    own = routing_scheme("own_expert").routings(stage)  # the own expert is always reachable
    assert all(torch.equal(r[:, c], torch.ones(2)) for c, r in enumerate(own))


@pytest.fixture(scope="module")
def sampled_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    scenario = tiny_scenario(
        methods=METHODS,
        stages={
            "extractor": {"rounds": 1, "local_epochs": 1},
            "expert": {"epochs": 2},
            "gate": {"rounds": 2, "local_epochs": 1, "top_k": 2, "remote_experts": REMOTE},
        },
        # The paper's gate (no latency penalty, which would also keep unreachable experts out:
        # their expected delay is infinite), so only the masked scores keep them out.
        inference={"enabled": True, "queries_per_client": 20},
    )
    out = tmp_path_factory.mktemp("runs") / "sampled"
    run_scenario(scenario, out)
    return out, scenario.seed


def _reach(seed: int) -> dict[int, tuple[int, ...]]:
    return {c: reachable_experts(seed, "nmoe/fedce", c, CLIENTS, REMOTE) for c in range(CLIENTS)}


def test_exchange_sends_features_only_to_the_sampled_experts(sampled_run) -> None:
    out, seed = sampled_run
    reach = _reach(seed)
    trace = pd.read_csv(out / "trace.csv")
    pairs = {(client_node(c), client_node(j)) for c in reach for j in reach[c] if j != c}
    assert len(pairs) == CLIENTS * REMOTE
    for method in GATED:
        rows = trace[(trace.method == method) & (trace.stage == "gate")]
        exchange = rows[rows.kind.isin(["features", "expert_out"])]
        assert len(exchange) == 2 * CLIENTS * REMOTE  # not 2 * n * (n-1) = 24
        feats = exchange[exchange.kind == "features"]
        back = exchange[exchange.kind == "expert_out"]
        assert set(zip(feats.src, feats.dst, strict=True)) == pairs
        assert set(zip(back.dst, back.src, strict=True)) == pairs


def test_no_weight_and_no_query_goes_to_an_unsampled_expert(sampled_run) -> None:
    out, seed = sampled_run
    reach = _reach(seed)
    for method in METHODS:
        freq = pd.read_csv(out / "heatmaps" / f"{method.replace('/', '_')}.csv")
        for c, row in freq.set_index("client").iterrows():
            for j in range(CLIENTS):
                # top_k = REMOTE + 1: every input asks each reachable expert, and no other.
                share = 1 / (REMOTE + 1) if j in reach[int(c)] else 0.0
                assert row[f"expert_{j}"] == pytest.approx(share), (method, c, j)
    queries = pd.read_csv(out / "inference.csv")
    assert set(queries.method) == set(METHODS)
    for client, asked in zip(queries.client, queries.experts, strict=True):
        assert {int(j) for j in str(asked).split(";")} <= set(reach[client])
    trace = pd.read_csv(out / "trace.csv")
    served = trace[(trace.stage == "inference") & (trace.kind == "features")]
    allowed = {(client_node(c), client_node(j)) for c in reach for j in reach[c]}
    assert len(served) > 0 and set(zip(served.src, served.dst, strict=True)) <= allowed


@pytest.mark.parametrize(
    ("gate", "inference", "key", "fix"),
    [
        ({"remote_experts": CLIENTS}, {}, "stages.gate.remote_experts", f"1..{CLIENTS - 1}"),
        ({"remote_experts": 1, "top_k": 3}, {}, "stages.gate.top_k", "at most 2"),
        ({"remote_experts": 1, "top_k": 2}, {"top_k": 3}, "inference.top_k", "at most 2"),
    ],
)
def test_config_refuses_what_a_client_cannot_reach(
    gate: dict, inference: dict, key: str, fix: str
) -> None:
    with pytest.raises(ValueError, match=key) as err:
        tiny_scenario(stages={"gate": gate}, inference=inference)
    assert fix in str(err.value)


def test_config_accepts_the_bounds_and_refuses_zero() -> None:
    top = tiny_scenario(stages={"gate": {"remote_experts": CLIENTS - 1, "top_k": CLIENTS}})
    assert top.stages.gate.remote_experts == CLIENTS - 1
    assert tiny_scenario(stages={"gate": {"remote_experts": 1, "top_k": 2}})
    assert tiny_scenario().stages.gate.remote_experts is None  # default: every other client
    with pytest.raises(ValueError, match="remote_experts"):
        tiny_scenario(stages={"gate": {"remote_experts": 0}})
