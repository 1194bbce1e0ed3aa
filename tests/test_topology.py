"""Topologies: YAML loading and its errors, generators, least-latency paths, neighbours."""

from __future__ import annotations

import copy
import itertools
import math
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nmoe_sim.network.topology import (
    Topology,
    TopologyError,
    load_topology,
    mec,
    random_geometric,
    star,
)

TOPOLOGIES = Path(__file__).resolve().parents[1] / "topologies"


def small_spec() -> dict[str, Any]:
    return {
        "nodes": [
            {"name": "cloud", "role": "cloud", "device_class": "server"},
            {"name": "bs0", "role": "edge", "device_class": "edge_server"},
            {"name": "c0", "role": "client", "device_class": "phone"},
            {"name": "c1", "role": "client", "device_class": "phone"},
        ],
        "links": [
            {"a": "cloud", "b": "bs0", "bandwidth_mbps": 100, "latency_ms": 10},
            {"a": "bs0", "b": "c0", "bandwidth_mbps": 20, "latency_ms": 5},
            {"a": "bs0", "b": "c1", "bandwidth_mbps": 20, "latency_ms": 5},
        ],
    }


def refused(spec: dict[str, Any]) -> str:
    with pytest.raises(TopologyError) as err:
        load_topology(spec)
    return str(err.value)


# ------------------------------------------------------------------ loading


@pytest.mark.parametrize("path", sorted(TOPOLOGIES.glob("*.yaml")), ids=lambda p: p.stem)
def test_example_files_load_and_route(path: Path) -> None:
    topo = load_topology(path)
    assert topo.graph.nodes[topo.cloud]["role"] == "cloud"
    assert topo.clients
    for c in topo.clients:
        up, down = topo.path(c, topo.cloud), topo.path(topo.cloud, c)
        assert (up[0], up[-1], down[0], down[-1]) == (c, topo.cloud, topo.cloud, c)
        assert topo.path_latency_s(up) > 0


def test_there_are_example_files() -> None:
    assert len(list(TOPOLOGIES.glob("*.yaml"))) >= 2


def test_links_are_symmetric_unless_directed() -> None:
    spec = small_spec()
    spec["links"][1:2] = [
        {"a": "bs0", "b": "c0", "bandwidth_mbps": 40, "latency_ms": 5, "directed": True},
        {"a": "c0", "b": "bs0", "bandwidth_mbps": 5, "latency_ms": 7, "directed": True},
    ]
    spec["links"][3]["loss_rate"] = 0.25
    g = load_topology(spec).graph
    assert g.number_of_edges() == 6
    assert g["bs0"]["c0"]["bandwidth_mbps"] == 40 and g["c0"]["bs0"]["bandwidth_mbps"] == 5
    assert g["c0"]["bs0"]["latency_ms"] == 7
    assert g["cloud"]["bs0"] == g["bs0"]["cloud"]
    assert g["bs0"]["c1"]["loss_rate"] == g["c1"]["bs0"]["loss_rate"] == 0.25
    assert g["cloud"]["bs0"]["loss_rate"] == 0.0  # default


def test_unknown_keys_are_refused_with_a_hint() -> None:
    spec = small_spec()
    spec["links"][0]["bandwidth"] = 10
    msg = refused(spec)
    assert "unknown key 'bandwidth'" in msg and "bandwidth_mbps" in msg and "links[0]" in msg

    spec = small_spec()
    spec["nodes"][2]["cpu"] = "arm"
    assert "unknown key 'cpu'" in refused(spec)

    spec = small_spec()
    spec["edges"] = []
    assert "unknown key 'edges'" in refused(spec)


def test_missing_fields_are_named() -> None:
    spec = small_spec()
    del spec["links"][1]["latency_ms"]
    msg = refused(spec)
    assert "links[1]" in msg and "missing `latency_ms`" in msg

    spec = small_spec()
    del spec["nodes"][2]["device_class"]
    assert "missing `device_class`" in refused(spec)

    assert "`links:` must be a non-empty list" in refused({"nodes": small_spec()["nodes"]})


def test_unknown_node_in_a_link() -> None:
    spec = small_spec()
    spec["links"].append({"a": "bs0", "b": "bs9", "bandwidth_mbps": 5, "latency_ms": 1})
    msg = refused(spec)
    assert "unknown node 'bs9'" in msg and "links[3]" in msg


@pytest.mark.parametrize("bandwidth", [0, -5, "10 Mbps", float("inf"), True])
def test_non_positive_or_non_numeric_bandwidth(bandwidth: object) -> None:
    spec = small_spec()
    spec["links"][2]["bandwidth_mbps"] = bandwidth
    msg = refused(spec)
    assert "bandwidth_mbps must be a positive number" in msg and "links[2]" in msg


def test_negative_latency_and_bad_loss_rate() -> None:
    spec = small_spec()
    spec["links"][0]["latency_ms"] = -1
    assert "latency_ms must be a number of milliseconds >= 0" in refused(spec)
    spec = small_spec()
    spec["links"][0]["loss_rate"] = 1.0
    assert "loss_rate must be in [0, 1)" in refused(spec)


def test_bad_role_missing_cloud_two_clouds() -> None:
    spec = small_spec()
    spec["nodes"][1]["role"] = "router"
    msg = refused(spec)
    assert "role 'router'" in msg and "cloud, edge, client" in msg

    spec = small_spec()
    spec["nodes"][0]["role"] = "edge"
    assert "no cloud node" in refused(spec)

    spec = small_spec()
    spec["nodes"][1]["role"] = "cloud"
    assert "2 cloud nodes" in refused(spec)


def test_disconnected_graphs_name_an_unreachable_pair() -> None:
    spec = small_spec()
    spec["nodes"].append({"name": "c9", "role": "client", "device_class": "phone"})
    msg = refused(spec)
    assert "not connected" in msg and "no path from 'cloud' to 'c9'" in msg

    spec = small_spec()  # c1 can be reached but cannot answer
    spec["links"][2]["directed"] = True
    msg = refused(spec)
    assert "no path from 'c1' to 'cloud'" in msg and "directed" in msg


def test_duplicates_are_refused() -> None:
    spec = small_spec()
    spec["nodes"].append(copy.deepcopy(spec["nodes"][2]))
    assert "'c0' is declared twice" in refused(spec)
    spec = small_spec()
    spec["links"].append({"a": "c0", "b": "bs0", "bandwidth_mbps": 9, "latency_ms": 1})
    assert "'c0' -> 'bs0' is declared twice" in refused(spec)


def test_yaml_file_errors(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="not found"):
        load_topology(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: [unclosed")
    with pytest.raises(TopologyError, match="not valid YAML"):
        load_topology(bad)


def test_a_graph_built_by_hand_is_validated() -> None:
    g = nx.DiGraph()
    g.add_node("cloud", role="cloud", device_class="server")
    g.add_edge("cloud", "ghost", bandwidth_mbps=1.0, latency_ms=1.0)
    with pytest.raises(TopologyError, match="'ghost' has no role"):
        Topology(g)
    with pytest.raises(TopologyError, match=r"networkx\.DiGraph"):
        Topology(nx.Graph())  # type: ignore[arg-type]


# ------------------------------------------------------------------ generators


def test_star_counts_and_roles() -> None:
    topo = star(5, bandwidth_mbps=10, latency_ms=2)
    g = topo.graph
    assert g.number_of_nodes() == 6 and g.number_of_edges() == 10
    assert topo.clients == tuple(f"c{i}" for i in range(5))
    assert topo.cloud == "cloud"
    assert topo.path("c1", "c3") == ("c1", "cloud", "c3")
    assert topo.neighbours("c0") == ("c1", "c2", "c3", "c4")  # cell-mates through the hub
    assert nx.is_strongly_connected(g)


@pytest.mark.parametrize("d2d", [None, 50.0])
def test_mec_counts_roles_and_paths(d2d: float | None) -> None:
    cells, per = 3, 4
    topo = mec(
        cells,
        per,
        access_mbps=20,
        access_latency_ms=5,
        backhaul_mbps=1000,
        backhaul_latency_ms=10,
        d2d_mbps=d2d,
        d2d_latency_ms=2,
    )
    g = topo.graph
    roles = [r for _, r in g.nodes.data("role")]
    assert (roles.count("cloud"), roles.count("edge"), roles.count("client")) == (1, cells, 12)
    d2d_links = cells * per * (per - 1) if d2d else 0
    assert g.number_of_edges() == 2 * cells + 2 * cells * per + d2d_links
    assert nx.is_strongly_connected(g)
    assert topo.clients == tuple(f"c{i}" for i in range(cells * per))
    assert g.has_edge("bs1", "c5") and not g.has_edge("bs0", "c5")  # c5 is in cell 1
    assert topo.path("c0", "cloud") == ("c0", "bs0", "cloud")
    assert topo.path_latency_s(topo.path("c0", "cloud")) == pytest.approx(0.015)
    assert topo.path("c0", "c5") == ("c0", "bs0", "cloud", "bs1", "c5")
    if d2d:
        assert topo.path("c0", "c3") == ("c0", "c3")
        assert topo.neighbours("c5") == ("c4", "c6", "c7")
    else:
        assert topo.path("c0", "c3") == ("c0", "bs0", "c3")
        assert topo.neighbours("c5") == ("c4", "c6", "c7")  # through the base station


def test_mec_at_scale_without_d2d() -> None:
    topo = mec(
        100, 100, access_mbps=20, access_latency_ms=5, backhaul_mbps=1e3, backhaul_latency_ms=10
    )
    assert len(topo.clients) == 10_000 and topo.graph.number_of_edges() == 20_200
    assert topo.path("c9999", "c0") == ("c9999", "bs99", "cloud", "bs0", "c0")


def test_generators_refuse_bad_counts() -> None:
    with pytest.raises(TopologyError, match="num_cells must be an integer >= 1"):
        mec(0, 3, access_mbps=1, access_latency_ms=1, backhaul_mbps=1, backhaul_latency_ms=1)
    with pytest.raises(TopologyError, match="bandwidth_mbps must be a positive"):
        star(3, bandwidth_mbps=0, latency_ms=1)


def edge_table(topo: Topology) -> list[tuple[str, str, float, float]]:
    return sorted(
        (u, v, d["bandwidth_mbps"], d["latency_ms"]) for u, v, d in topo.graph.edges(data=True)
    )


def test_random_geometric_is_seeded_and_connected() -> None:
    a = random_geometric(40, 0.25, np.random.default_rng(7))
    b = random_geometric(40, 0.25, np.random.default_rng(7))
    c = random_geometric(40, 0.25, np.random.default_rng(8))
    assert edge_table(a) == edge_table(b)
    assert dict(a.graph.nodes.data("pos")) == dict(b.graph.nodes.data("pos"))
    assert edge_table(a) != edge_table(c)
    assert nx.is_strongly_connected(a.graph)
    roles = [r for _, r in a.graph.nodes.data("role")]
    assert roles.count("client") == 40 and roles.count("cloud") == 1
    assert a.graph.out_degree("cloud") == 1


def test_random_geometric_bandwidth_falls_with_distance() -> None:
    peak, floor = 50.0, 0.1
    topo = random_geometric(
        60, 0.3, np.random.default_rng(1), bandwidth_mbps=peak, min_bandwidth_fraction=floor
    )
    r = topo.graph.graph["radius"]
    pos = dict(topo.graph.nodes.data("pos"))
    pairs = []
    for u, v, d in topo.graph.edges(data=True):
        if "cloud" in (u, v):
            continue
        dist = math.dist(pos[u], pos[v])
        assert dist <= r + 1e-12
        assert d["bandwidth_mbps"] == pytest.approx(peak * (1 - (1 - floor) * dist / r))
        pairs.append((dist, d["bandwidth_mbps"]))
    pairs.sort()
    assert all(b1 >= b2 for (_, b1), (_, b2) in itertools.pairwise(pairs))
    assert all(peak * floor - 1e-9 <= bw <= peak for _, bw in pairs)


def test_random_geometric_grows_or_refuses() -> None:
    grown = random_geometric(50, 0.01, np.random.default_rng(3))
    assert grown.graph.graph["radius"] > 0.01
    assert nx.is_strongly_connected(grown.graph)
    with pytest.raises(TopologyError, match=r"disconnected groups; raise the radius"):
        random_geometric(50, 0.01, np.random.default_rng(3), grow_radius=False)


# ------------------------------------------------------------------ paths


def spec_with(links: list[tuple[str, str, float, float]], extra: tuple[str, ...] = ()) -> Topology:
    names = sorted({x for a, b, _, _ in links for x in (a, b)})
    nodes = [
        {
            "name": n,
            "role": "cloud" if n == "cloud" else ("edge" if n in extra else "client"),
            "device_class": "x",
        }
        for n in names
    ]
    return load_topology(
        {
            "nodes": nodes,
            "links": [
                {"a": a, "b": b, "bandwidth_mbps": bw, "latency_ms": lat} for a, b, bw, lat in links
            ],
        }
    )


def test_least_latency_beats_fewer_hops() -> None:
    topo = spec_with(
        [("cloud", "c0", 100, 50), ("cloud", "r", 10, 10), ("r", "c0", 10, 10)], extra=("r",)
    )
    assert topo.path("cloud", "c0") == ("cloud", "r", "c0")
    assert topo.path("c0", "cloud") == ("c0", "r", "cloud")
    assert topo.path_latency_s(("cloud", "r", "c0")) == pytest.approx(0.020)


def test_ties_go_to_fewer_hops_then_names() -> None:
    hops = spec_with([("cloud", "c0", 1, 20), ("cloud", "r", 1, 10), ("r", "c0", 1, 10)])
    assert hops.path("cloud", "c0") == ("cloud", "c0")
    names = spec_with(
        [("cloud", "rb", 1, 5), ("rb", "c0", 1, 5), ("cloud", "ra", 1, 5), ("ra", "c0", 1, 5)]
    )
    assert names.path("cloud", "c0") == ("cloud", "ra", "c0")
    assert names.path("c0", "cloud") == ("c0", "ra", "cloud")


def test_paths_are_cached_and_unknown_nodes_refused() -> None:
    topo = load_topology(TOPOLOGIES / "campus_mesh.yaml")
    assert topo.path("c5", "cloud") is topo.path("c5", "cloud")
    assert topo.path("c2", "c2") == ("c2",)
    with pytest.raises(TopologyError, match="unknown node 'nope'"):
        topo.path("nope", "cloud")
    with pytest.raises(TopologyError, match="no link"):
        topo.path_latency_s(("c0", "c5"))


@st.composite
def digraphs(draw: st.DrawFn) -> list[tuple[str, str, float, float]]:
    n = draw(st.integers(3, 7))
    names = ["cloud"] + [f"n{i}" for i in range(1, n)]
    links: dict[tuple[str, str], float] = {}
    for i in range(n):  # a ring both ways keeps it strongly connected
        j = (i + 1) % n
        links[(names[i], names[j])] = draw(st.sampled_from([0.0, 1.0, 1.5, 2.0, 3.0]))
    for a, b in draw(st.lists(st.tuples(st.sampled_from(names), st.sampled_from(names)))):
        if a != b:
            links[(a, b)] = draw(st.sampled_from([0.0, 0.5, 1.0, 2.5]))
    out = []
    for (a, b), lat in links.items():
        out.append((a, b, 1.0, lat))
    return out


def brute_force(topo: Topology, src: str, dst: str) -> tuple[str, ...]:
    g = topo.graph
    best = None
    for p in nx.all_simple_paths(g, src, dst):
        lat = sum(round(g[u][v]["latency_ms"] * 1e6) for u, v in itertools.pairwise(p))
        key = (lat, len(p), tuple(p))
        best = key if best is None or key < best else best
    assert best is not None
    return best[2]


@settings(max_examples=60, deadline=None)
@given(links=digraphs(), reverse_order=st.booleans())
def test_paths_match_brute_force_in_any_query_order(
    links: list[tuple[str, str, float, float]], reverse_order: bool
) -> None:
    """Hub trees, reverse trees and pair searches all pick the same (latency, hops, names)."""
    g = nx.DiGraph()
    roles = {"cloud": "cloud", "n1": "edge"}  # hubs get full trees, clients pair searches
    for a, b, bw, lat in links:
        for n in (a, b):
            g.add_node(n, role=roles.get(n, "client"), device_class="x")
        g.add_edge(a, b, bandwidth_mbps=bw, latency_ms=lat, loss_rate=0.0)
    topo = Topology(g)
    pairs = [(s, d) for s in g for d in g if s != d]
    if reverse_order:
        pairs.reverse()
    for s, d in pairs:
        assert topo.path(s, d) == brute_force(topo, s, d), (s, d)


def test_clients_separated_by_a_hub_need_no_pair_search(monkeypatch: pytest.MonkeyPatch) -> None:
    """Between cells (through their base stations) and across a star's cloud, a client-to-client
    path is the hub's two cached trees joined; within a cell it is the direct d2d link. No pair
    search runs (each walks the sender's whole cell), and each path is the one it would find."""
    cells = mec(
        3,
        6,
        access_mbps=20.0,
        access_latency_ms=10.0,
        backhaul_mbps=1000.0,
        backhaul_latency_ms=5.0,
        d2d_mbps=50.0,
        d2d_latency_ms=2.0,
    )
    hub = star(30, 20.0, 10.0)
    searched: list[tuple[str, str]] = []
    real = Topology._pair_search
    monkeypatch.setattr(
        Topology, "_pair_search", lambda self, a, b: searched.append((a, b)) or real(self, a, b)
    )
    for topo in (cells, hub):
        for a, b in itertools.permutations(topo.clients, 2):
            assert topo.path(a, b) == real(topo, a, b), (a, b)
    assert searched == []
    assert sum(len(cells.path(a, b)) == 2 for a, b in itertools.permutations(cells.clients, 2)) == (
        3 * 6 * 5  # the d2d pairs of each cell
    )


# ------------------------------------------------------------------ neighbours and the rest


def test_neighbours_follow_d2d_links_else_the_cell() -> None:
    topo = load_topology(TOPOLOGIES / "two_cells_d2d.yaml")
    assert topo.neighbours("c1") == ("c0", "c2")
    assert topo.neighbours("c5") == ("c4",)
    plain = load_topology(TOPOLOGIES / "single_cell.yaml")
    assert plain.neighbours("c2") == ("c0", "c1", "c3")
    with pytest.raises(TopologyError, match="for clients"):
        plain.neighbours("bs0")


def test_validation_builds_no_neighbour_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    """A star's clients all neighbour each other: n^2 edges. Building the network (what
    `validate` does) must not build them; the walk's graph appears when first asked for."""
    from typer.testing import CliRunner

    from nmoe_sim.cli import app
    from nmoe_sim.config import NetworkConfig
    from nmoe_sim.network import build

    setup = build.build_network(NetworkConfig(topology="star"), 3000, seed=0)
    assert "neighbours" not in vars(setup)  # the cached graph is not there yet
    small = build.build_network(NetworkConfig(topology="star"), 4, seed=0)
    assert [list(small.neighbours.of(c)) for c in range(4)] == [
        [1, 2, 3],
        [0, 2, 3],
        [0, 1, 3],
        [0, 1, 2],
    ]

    built: list[build.NetworkSetup] = []
    original = build.build_network

    def recording(*args: Any, **kwargs: Any) -> build.NetworkSetup:
        built.append(original(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(build, "build_network", recording)
    scenario = Path(__file__).parent.parent / "scenarios" / "smoke.yaml"
    result = CliRunner().invoke(app, ["validate", str(scenario)])
    assert result.exit_code == 0, result.output
    assert len(built) == 1 and "neighbours" not in vars(built[0])
