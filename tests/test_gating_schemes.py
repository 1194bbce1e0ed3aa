"""The stage-3 and stage-1 registries: names resolve to plug-ins, fixed routings are what they
say, and every NMoE method name is a registered pair."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from nmoe_sim.gating import GATING_SCHEMES, ROUTING_REFERENCES, routing_scheme
from nmoe_sim.gating.base import FixedRouting, LearnedGate
from nmoe_sim.inference.routing import Router
from nmoe_sim.methods import NMOE_METHODS, PAPER_METHODS, parse_nmoe
from nmoe_sim.models.spec import ModelSpec
from nmoe_sim.objectives import OBJECTIVES


def test_every_registered_name_resolves_to_its_kind() -> None:
    for name in GATING_SCHEMES.names:
        assert isinstance(routing_scheme(name), LearnedGate), name
    for name in ROUTING_REFERENCES.names:
        assert isinstance(routing_scheme(name), FixedRouting), name
    for name in OBJECTIVES.names:
        objective = OBJECTIVES.get(name)()
        assert callable(objective.local_task) and callable(objective.model), name


def test_methods_are_the_registered_pairs() -> None:
    pairs = {(m.extractor, m.routing) for m in map(parse_nmoe, NMOE_METHODS)}
    kinds = GATING_SCHEMES.names + ROUTING_REFERENCES.names
    assert pairs == {(fe, g) for fe in OBJECTIVES.names for g in kinds}
    assert set(PAPER_METHODS) <= set(("local", "fedavg", "centralized", *NMOE_METHODS))


def test_unknown_scheme_is_refused_with_the_registered_names() -> None:
    with pytest.raises(ValueError, match="unknown gating scheme 'topgat'; choose one of fedgate"):
        routing_scheme("topgat")


def _stage(clients: int, samples: int) -> Any:
    # What a fixed routing reads of its stage: the experts' output shape and the clients, each
    # reaching every expert (no stages.gate.remote_experts).
    return SimpleNamespace(
        expert_probs=torch.zeros(samples, clients, 3),
        num_clients=clients,
        method="m",
        experts=lambda client: None,
        all_experts=lambda: None,
    )


def test_own_expert_routes_each_client_to_itself_only() -> None:
    stage = _stage(clients=3, samples=4)
    routings = routing_scheme("own_expert").routings(stage)
    for c, r in enumerate(routings):
        expected = torch.zeros(4, 3)
        expected[:, c] = 1.0
        assert torch.equal(r, expected)
    route = routing_scheme("own_expert").serving(stage)
    assert route.top_k == 1 and route.latency_weight == 0.0
    router = Router(route.scores, route.top_k, 0.0)
    assert [router.choose(c, 2) for c in range(3)] == [((c,), (1.0,)) for c in range(3)]


def test_uniform_mixes_every_expert_equally() -> None:
    stage = _stage(clients=5, samples=2)
    for r in routing_scheme("uniform").routings(stage):
        assert torch.equal(r, torch.full((2, 5), 0.2))
    route = routing_scheme("uniform").serving(stage)
    assert route.top_k == 5
    experts, weights = Router(route.scores, route.top_k, 0.0).choose(1, 0)
    assert experts == (0, 1, 2, 3, 4)  # equal scores: lower expert first
    assert np.allclose(weights, 0.2)


def test_a_fixed_routing_has_no_stage_3() -> None:
    with pytest.raises(RuntimeError, match="no stage 3"):
        next(iter(routing_scheme("uniform").train(_stage(2, 1))))


# --- serving scores only where queries land --------------------------------------------------


def _learned_stage(clients: int, samples: int) -> Any:
    """What a learned gate's serving reads: the clients' gates and the test features."""
    spec = ModelSpec("small_cnn", (1, 4, 4), 3, clients, 6, 8, 8, 4)
    gates = []
    for c in range(clients):
        torch.manual_seed(c)
        gates.append(spec.build_gate().state_dict())
    scenario = SimpleNamespace(
        inference=SimpleNamespace(top_k=None, latency_weight=0.0),
        stages=SimpleNamespace(gate=SimpleNamespace(top_k=2)),
    )
    ids = list(range(clients))
    ctx = SimpleNamespace(spec=spec, device="cpu", client_ids=ids, scenario=scenario)
    return SimpleNamespace(
        ctx=ctx,
        features=torch.randn(samples, 6, generator=torch.Generator().manual_seed(7)),
        expert_probs=torch.zeros(samples, clients, 3),
        num_clients=clients,
        client_gates=lambda: iter(gates),
        experts=lambda client: None,
        all_experts=lambda: None,
    )


@pytest.mark.parametrize("scheme", ["fedgate", "uniform"])
def test_serving_keeps_exactly_the_queried_rows_of_the_full_scores(scheme: str) -> None:
    """With `samples`, client c's scores are the full-test-set scores at samples[c] to the bit,
    and a router looks a query's sample up there: no client holds [test, experts] rows it is never
    queried on (n clients x test x n numbers in all)."""
    stage = _learned_stage(clients=3, samples=10)
    samples = [np.array([1, 4, 9]), np.array([0]), np.array([2, 3, 5, 6, 7])]
    full = routing_scheme(scheme).serving(stage)
    kept = routing_scheme(scheme).serving(stage, samples)
    assert kept.samples is samples and full.samples is None
    assert [s.shape for s in kept.scores] == [(3, 3), (1, 3), (5, 3)]
    for c in range(3):
        assert np.array_equal(kept.scores[c], full.scores[c][samples[c]])
    whole = Router(full.scores, full.top_k, 0.0)
    part = Router(kept.scores, kept.top_k, 0.0, samples=kept.samples)
    for c, asked in enumerate(samples):
        for s in asked:
            assert part.choose(c, int(s)) == whole.choose(c, int(s))
    with pytest.raises(KeyError, match="client 1 has no gate scores for test sample 4"):
        part.choose(1, 4)


def test_routings_are_made_one_client_at_a_time() -> None:
    """A scheme's routings come as an iterator: a caller holds one [test, experts] routing, not
    every client's (which is quadratic in the clients)."""
    stage = _stage(clients=4, samples=2)
    routings = routing_scheme("uniform").routings(stage)
    assert not isinstance(routings, list | tuple)
    assert torch.equal(next(iter(routings)), torch.full((2, 4), 0.25))
    assert sum(1 for _ in routings) == 3  # the other three clients
