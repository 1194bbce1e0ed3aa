"""FlowNetwork: transfer times against hand-computed values, max-min sharing, properties."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from nmoe_sim.network.channel import NetworkModel
from nmoe_sim.network.flows import FlowNetwork
from nmoe_sim.network.topology import Topology, TopologyError, load_topology, mec, star
from nmoe_sim.network.topology import random_geometric as rgg

TOPOLOGIES = Path(__file__).resolve().parents[1] / "topologies"
MBPS = 1e6

Transfer = tuple[float, str, str, int]  # (start s, src, dst, size bytes)


def run(
    topo: Topology, transfers: list[Transfer], *, record: bool = False
) -> tuple[list[tuple[float, tuple[str, ...]]], FlowNetwork]:
    """Start each transfer at its time; return (end time, path) per transfer and the network."""
    env = simpy.Environment()
    net = FlowNetwork(topo, record_history=record)
    out: list[Any] = [None] * len(transfers)

    def one(i: int, start: float, src: str, dst: str, size: int) -> Generator:
        yield env.timeout(start)
        path = yield from net.carry(env, src, dst, size)
        out[i] = (env.now, path)

    for i, t in enumerate(transfers):
        env.process(one(i, *t))
    env.run()
    return out, net


def line(*links: tuple[str, str, float, float]) -> Topology:
    """A topology from (a, b, bandwidth_mbps, latency_ms) symmetric links; 'cloud' is the cloud."""
    names = sorted({x for a, b, _, _ in links for x in (a, b)})
    return load_topology(
        {
            "nodes": [
                {"name": n, "role": "cloud" if n == "cloud" else "client", "device_class": "x"}
                for n in names
            ],
            "links": [
                {"a": a, "b": b, "bandwidth_mbps": bw, "latency_ms": lat} for a, b, bw, lat in links
            ],
        }
    )


def test_is_a_network_model() -> None:
    net: NetworkModel = FlowNetwork(star(1, 1.0, 1.0))
    assert callable(net.carry)


def test_one_flow_on_one_link() -> None:
    bw_mbps, lat_ms, size = 10.0, 5.0, 1_000_000
    ends, _ = run(star(1, bw_mbps, lat_ms), [(0.0, "cloud", "c0", size)])
    end, path = ends[0]
    assert path == ("cloud", "c0")
    assert end == pytest.approx(lat_ms / 1e3 + 8 * size / (bw_mbps * MBPS), rel=1e-12)


def test_two_equal_flows_share_a_link_evenly() -> None:
    bw, lat, size = 10.0, 5.0, 1_000_000
    ends, _ = run(star(1, bw, lat), [(0.0, "cloud", "c0", size)] * 2)
    expected = lat / 1e3 + 2 * 8 * size / (bw * MBPS)
    assert [e for e, _ in ends] == [pytest.approx(expected, rel=1e-12)] * 2


def test_staggered_flows_half_rate_then_full_rate() -> None:
    bw, lat, size = 10.0, 5.0, 1_000_000
    latency, t_alone = lat / 1e3, 8 * size / (bw * MBPS)
    # The second transmission begins when the first has sent half its bits.
    ends, _ = run(
        star(1, bw, lat), [(0.0, "cloud", "c0", size), (t_alone / 2, "cloud", "c0", size)]
    )
    # First: T/2 alone, then its other half at half rate takes T.
    assert ends[0][0] == pytest.approx(latency + t_alone / 2 + t_alone, rel=1e-12)
    # Second: half its bits at half rate (T), the rest alone (T/2).
    assert ends[1][0] == pytest.approx(latency + t_alone / 2 + t_alone + t_alone / 2, rel=1e-12)


def test_flow_limited_elsewhere_leaves_capacity_to_the_other() -> None:
    # a -(10)- hub -(30)- cloud, b -(100)- hub: both cross hub->cloud (30 Mbps).
    topo = line(("a", "hub", 10, 1), ("b", "hub", 100, 1), ("hub", "cloud", 30, 2))
    size = 500_000
    bits_a, bits_b = 8 * size, 8 * 4 * size
    ends, net = run(topo, [(0.0, "a", "cloud", size), (0.0, "b", "cloud", 4 * size)], record=True)
    latency = 0.003
    # Max-min: a is held to 10 by its own link, b takes the remaining 30 - 10 = 20 (not 15).
    t_a = bits_a / (10 * MBPS)
    assert ends[0][0] == pytest.approx(latency + t_a, rel=1e-12)
    sent_b = 20 * MBPS * t_a
    assert ends[1][0] == pytest.approx(latency + t_a + (bits_b - sent_b) / (30 * MBPS), rel=1e-12)
    assert net.history is not None
    shared = [rates for t, rates in net.history if len(rates) == 2]
    assert shared[-1] == {0: pytest.approx(10 * MBPS), 1: pytest.approx(20 * MBPS)}


def test_parking_lot_rates() -> None:
    # n0 -(10)- n1 -(20)- n2: the long flow shares n0->n1 with one flow and n1->n2 with another.
    topo = line(("n0", "n1", 10, 1), ("n1", "cloud", 20, 1))
    size = 10_000_000
    _, net = run(
        topo,
        [(0.0, "n0", "cloud", size), (0.001, "n0", "n1", size), (0.0, "n1", "cloud", size)],
        record=True,
    )
    assert net.history is not None and net.records is not None
    path_of = {rec.flow_id: rec.path for rec in net.records}
    all_three = [rates for _, rates in net.history if len(rates) == 3]
    by_path = {path_of[fid]: rate for fid, rate in all_three[0].items()}
    # n0->n1 splits 10 into 5 + 5; the long flow's 5 leaves 15 of n1->cloud to the short one.
    assert by_path == {
        ("n0", "n1", "cloud"): pytest.approx(5e6),
        ("n0", "n1"): pytest.approx(5e6),
        ("n1", "cloud"): pytest.approx(15e6),
    }


def test_latency_sums_along_a_multi_hop_path() -> None:
    topo = mec(2, 2, access_mbps=20, access_latency_ms=5, backhaul_mbps=100, backhaul_latency_ms=10)
    size = 250_000
    ends, _ = run(topo, [(0.0, "c0", "c3", size)])
    end, path = ends[0]
    assert path == ("c0", "bs0", "cloud", "bs1", "c3")
    assert end == pytest.approx((5 + 10 + 10 + 5) / 1e3 + 8 * size / (20 * MBPS), rel=1e-12)


def test_least_latency_path_even_with_more_hops() -> None:
    topo = line(("cloud", "c0", 100, 50), ("cloud", "r", 8, 10), ("r", "c0", 4, 10))
    size = 100_000
    ends, _ = run(topo, [(0.0, "cloud", "c0", size)])
    end, path = ends[0]
    assert path == ("cloud", "r", "c0")
    assert end == pytest.approx(0.020 + 8 * size / (4 * MBPS), rel=1e-12)


def test_local_empty_and_bad_transfers() -> None:
    topo = star(2, 10.0, 5.0)
    ends, _ = run(topo, [(1.0, "c0", "c0", 10**9), (0.0, "c0", "c1", 0)])
    assert ends[0] == (1.0, ("c0",))  # no time at all
    assert ends[1][0] == pytest.approx(0.010)  # latency only
    env = simpy.Environment()
    net = FlowNetwork(topo)
    with pytest.raises(ValueError, match="size_bytes"):
        next(net.carry(env, "c0", "c1", -1))
    with pytest.raises(TopologyError, match="unknown node"):
        next(net.carry(env, "c0", "c9", 1))
    with pytest.raises(ValueError, match="one FlowNetwork per environment"):
        next(net.carry(simpy.Environment(), "c0", "c1", 1))


def test_concurrent_uploads_finish_together_on_a_crowded_cell() -> None:
    # 8 equal uploads through a 40 Mbps backhaul behind 20 Mbps access links: 5 Mbps each.
    topo = mec(1, 8, access_mbps=20, access_latency_ms=5, backhaul_mbps=40, backhaul_latency_ms=10)
    size = 125_000
    ends, net = run(topo, [(0.0, c, "cloud", size) for c in topo.clients])
    assert [e for e, _ in ends] == [pytest.approx(0.015 + 8 * size / (5 * MBPS), rel=1e-12)] * 8
    assert net.transfers_completed == 8 and net.active_flows == 0 and net.peak_active_flows == 8


# ------------------------------------------------------------------ properties

MESH = load_topology(TOPOLOGIES / "campus_mesh.yaml")
CELLS = load_topology(TOPOLOGIES / "two_cells_d2d.yaml")
RGG = rgg(8, 0.45, np.random.default_rng(5))
TOPOS = {"mesh": MESH, "cells": CELLS, "rgg": RGG}


@st.composite
def workloads(draw: st.DrawFn) -> tuple[str, list[Transfer]]:
    name = draw(st.sampled_from(sorted(TOPOS)))
    nodes = sorted(TOPOS[name].graph.nodes)
    transfers = draw(
        st.lists(
            st.tuples(
                st.sampled_from([0.0, 0.0, 0.001, 0.05, 0.2, 0.37, 1.0]),
                st.sampled_from(nodes),
                st.sampled_from(nodes),
                st.integers(1, 3_000_000),
            ),
            min_size=1,
            max_size=14,
        )
    )
    return name, transfers


def capacities(topo: Topology) -> dict[tuple[str, str], float]:
    return {(u, v): d["bandwidth_mbps"] * MBPS for u, v, d in topo.graph.edges(data=True)}


@settings(max_examples=120, deadline=None)
@given(workloads())
def test_conservation_max_min_and_monotone_time(work: tuple[str, list[Transfer]]) -> None:
    name, transfers = work
    topo = TOPOS[name]
    ends, net = run(topo, transfers, record=True)
    assert net.history is not None and net.records is not None
    cap = capacities(topo)

    # Time never goes back: re-shares are logged in clock order, each flow ends after it starts.
    times = [t for t, _ in net.history]
    assert times == sorted(times)
    for (start, src, dst, _), (end, path) in zip(transfers, ends, strict=True):
        assert path == topo.path(src, dst)
        assert end >= start + topo.path_latency_s(path) - 1e-12

    # Conservation: each transmission's rate, integrated over the re-share log, is its size.
    sent: dict[int, float] = defaultdict(float)
    for (t0, rates), (t1, _) in itertools.pairwise(net.history):
        for fid, rate in rates.items():
            sent[fid] += rate * (t1 - t0)
    for rec in net.records:
        assert rec.t_end_s >= rec.t_tx_start_s
        assert sent[rec.flow_id] == pytest.approx(rec.size_bits, rel=1e-9, abs=1e-3)

    # Max-min optimality after every re-share: no link over capacity, and every flow crosses a
    # saturated link on which no flow is faster.
    paths = {rec.flow_id: rec.path for rec in net.records}
    for _, rates in net.history:
        load: dict[tuple[str, str], float] = defaultdict(float)
        top: dict[tuple[str, str], float] = defaultdict(float)
        for fid, rate in rates.items():
            assert rate > 0
            for link in itertools.pairwise(paths[fid]):
                load[link] += rate
                top[link] = max(top[link], rate)
        for link, used in load.items():
            assert used <= cap[link] * (1 + 1e-9)
        for fid, rate in rates.items():
            assert any(
                load[link] >= cap[link] * (1 - 1e-9) and rate >= top[link] * (1 - 1e-9)
                for link in itertools.pairwise(paths[fid])
            ), (fid, rates)


@settings(max_examples=30, deadline=None)
@given(workloads())
def test_same_inputs_same_results(work: tuple[str, list[Transfer]]) -> None:
    name, transfers = work
    first, net1 = run(TOPOS[name], transfers, record=True)
    again, net2 = run(TOPOS[name], transfers, record=True)
    assert first == again  # exact floats, not approximately
    assert net1.history == net2.history


def test_many_flows_on_a_mec_cell_complete_and_conserve() -> None:
    """A denser seeded mix (uploads, downloads, d2d) than hypothesis draws, checked the same way."""
    topo = mec(
        3,
        6,
        access_mbps=20,
        access_latency_ms=5,
        backhaul_mbps=50,
        backhaul_latency_ms=10,
        d2d_mbps=30,
        d2d_latency_ms=2,
    )
    rng = np.random.default_rng(11)
    nodes = [topo.cloud, *topo.clients]
    transfers = [
        (
            float(rng.uniform(0, 2)),
            str(rng.choice(nodes)),
            str(rng.choice(nodes)),
            int(rng.integers(1_000, 2_000_000)),
        )
        for _ in range(300)
    ]
    ends, net = run(topo, transfers, record=True)
    assert all(e is not None for e in ends)
    assert net.records is not None and net.history is not None
    assert net.transfers_completed == sum(1 for _, s, d, _ in transfers if s != d)
    sent: dict[int, float] = defaultdict(float)
    for (t0, rates), (t1, _) in itertools.pairwise(net.history):
        for fid, rate in rates.items():
            sent[fid] += rate * (t1 - t0)
    for rec in net.records:
        assert sent[rec.flow_id] == pytest.approx(rec.size_bits, rel=1e-9)


def _scan_water_fill(classes: list[Any], links: list[Any]) -> dict[Any, float]:
    """Progressive filling written as its definition: every level, scan all links for the least
    fair share (first listed wins ties) and all unfrozen classes for a lower cap; freeze; reduce
    the residuals in list order. The reference the network's heap-based fill must equal exactly."""
    residual = {link: link.capacity_bps for link in links}
    unfrozen_flows = {link: len(link.flows) for link in links}
    rates: dict[Any, float] = {}
    unfrozen = list(classes)
    while unfrozen:
        level, tight = float("inf"), None
        for link in links:
            if unfrozen_flows[link] > 0 and residual[link] / unfrozen_flows[link] < level:
                level, tight = residual[link] / unfrozen_flows[link], link
        capped = None
        for cls in unfrozen:
            if cls.cap_bps < level:
                level, capped = cls.cap_bps, cls
        level = max(level, 0.0)
        frozen = [capped] if capped is not None else [c for c in unfrozen if tight in c.links]
        assert frozen
        unfrozen = [c for c in unfrozen if c not in frozen]
        for cls in frozen:
            rates[cls] = level
            for link in cls.links:
                residual[link] -= cls.n * level
                unfrozen_flows[link] -= cls.n
    return rates


def test_water_fill_equals_the_level_by_level_scan_exactly(monkeypatch: Any) -> None:
    """Every max-min solve of an all-to-all exchange with TCP caps (about 350 solves over
    components of up to 120 classes, many distinct levels, ties) gives bit for bit the
    rates of the plain scan, so the heaps change the cost and nothing else. The network is
    loaded from its source, so the check also runs where the compiled core is in use."""
    import importlib.util
    import sys

    import nmoe_sim.network
    from nmoe_sim.network.transports import by_name

    name = "nmoe_sim.network._flows_from_source"
    spec = importlib.util.spec_from_file_location(
        name, Path(nmoe_sim.network.__file__).with_name("flows.py")
    )
    assert spec is not None and spec.loader is not None
    flows = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, flows)
    spec.loader.exec_module(flows)
    solved: list[int] = []
    heap_fill = flows._water_fill

    def checked(classes: list[Any], links: list[Any]) -> None:
        expected = _scan_water_fill(classes, links)
        heap_fill(classes, links)
        assert {cls: cls.new_rate_bps for cls in classes} == expected
        solved.append(len(classes))

    monkeypatch.setattr(flows, "_water_fill", checked)
    topo = mec(3, 8, access_mbps=20, access_latency_ms=5, backhaul_mbps=100, backhaul_latency_ms=3)
    env = simpy.Environment()
    net = flows.FlowNetwork(topo, transport=by_name("tcp"))
    rng = np.random.default_rng(3)

    def pair(src: str, dst: str, size: int) -> Generator:
        yield from net.carry(env, src, dst, size)
        yield from net.carry(env, dst, src, size // 10)

    for src in topo.clients:
        others = [c for c in topo.clients if c != src]
        for dst in rng.choice(others, size=5, replace=False):
            env.process(pair(src, str(dst), int(rng.integers(20_000, 400_000))))
    env.run()
    assert net.transfers_completed == 2 * 24 * 5
    assert len(solved) > 100 and max(solved) > 50


def test_transfers_issued_together_finish_the_same_in_any_order() -> None:
    """Starts and ends at one simulated instant are simultaneous: the order the code issues them
    in must not change when any transfer finishes. (Rates re-solved after each start gave a flow
    in slow start rates that lasted no time, which could end its slow start early: 3 of these
    100 workloads then had a transfer end up to 3.1 % apart in the two orders.)
    Pairs are distinct in both directions: which message opens a pair's one TCP connection does
    depend on order."""
    from nmoe_sim.network.transports import by_name

    topo = mec(2, 3, access_mbps=20, access_latency_ms=5, backhaul_mbps=100, backhaul_latency_ms=3)
    nodes = [topo.cloud, *topo.clients]
    pairs = [(a, b) for a in nodes for b in nodes if a < b]

    def ends(transfers: list[Transfer]) -> dict[tuple[str, str], float]:
        env = simpy.Environment()
        net = FlowNetwork(topo, transport=by_name("tcp"))
        out: dict[tuple[str, str], float] = {}

        def one(start: float, src: str, dst: str, size: int) -> Generator:
            yield env.timeout(start)
            yield from net.carry(env, src, dst, size)
            out[(src, dst)] = env.now

        for t in transfers:
            env.process(one(*t))
        env.run()
        return out

    for seed in range(100):
        rng = np.random.default_rng(seed)
        chosen = [pairs[k] for k in rng.choice(len(pairs), 12, replace=False)]
        transfers = [
            (
                float(rng.choice([0.0, 0.0, 0.004])),
                *(p if rng.random() < 0.5 else p[::-1]),
                int(rng.integers(20_000, 300_000)),
            )
            for p in chosen
        ]
        shuffled = [transfers[k] for k in rng.permutation(len(transfers))]
        # Equal up to the rounding of sums taken in another order.
        assert ends(shuffled) == pytest.approx(ends(transfers), rel=1e-12, abs=0), seed


def test_network_events_queue_in_simpys_order_and_resume_processes() -> None:
    """The network's own events (`_Event`, queued by `_schedule`) take their place in SimPy's
    queue as `Timeout`s would: by time, then in the order they were made; and a process that
    yields one resumes with its value. (They read SimPy's queue directly: this fails first if a
    SimPy release moves it.)"""
    from nmoe_sim.network.flows import _Event, _schedule

    env = simpy.Environment()
    order: list[str] = []

    def note(name: str) -> Any:
        return lambda _event: order.append(name)

    env.timeout(1.0).callbacks.append(note("timeout a, t=1"))
    _schedule(env, _Event((note("network, t=1"),), None), 1.0)
    env.timeout(1.0).callbacks.append(note("timeout b, t=1"))
    _schedule(env, _Event((note("network, t=0.5"),), None), 0.5)
    env.timeout(2.0).callbacks.append(note("timeout, t=2"))

    done = _Event([], None)
    got: list[tuple[float, Any]] = []

    def waiter() -> Generator[Any, Any, None]:
        value = yield done
        got.append((env.now, value))

    def trigger() -> Generator[Any, Any, None]:
        yield env.timeout(1.5)
        done._value = "window"
        _schedule(env, done, 0.0)

    env.process(waiter())
    env.process(trigger())
    env.run()
    assert order == [
        "network, t=0.5",
        "timeout a, t=1",
        "network, t=1",
        "timeout b, t=1",
        "timeout, t=2",
    ]
    assert got == [(1.5, "window")]
