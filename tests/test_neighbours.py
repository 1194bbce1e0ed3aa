"""Walk neighbours and paths on large networks: what is held and searched grows linearly with
the clients (counted, not timed), and the compact form walks exactly as the explicit graph."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from nmoe_sim.config import NetworkConfig
from nmoe_sim.federation.passing import random_walk_route
from nmoe_sim.network import build
from nmoe_sim.network.neighbours import AllBut, GraphNeighbours, GroupNeighbours
from nmoe_sim.network.topology import Topology


def test_all_but_is_the_list_without_the_excluded_id() -> None:
    ids = np.array([2, 3, 5, 8, 13])
    for excluded in ids:
        view = AllBut(ids, int(excluded))
        expected = [int(i) for i in ids if i != excluded]
        assert len(view) == 4
        assert [view[i] for i in range(len(view))] == expected
        assert list(view) == expected and view[-1] == expected[-1] and view[1:3] == expected[1:3]
    with pytest.raises(IndexError):
        AllBut(ids, 2)[4]
    with pytest.raises(ValueError, match="not among"):
        AllBut(ids, 4)


def _old_graph(setup: build.NetworkSetup, n: int) -> nx.Graph:
    """The explicit neighbour graph as the network built it before groups (the oracle): each
    client's topology neighbours among the used clients, undirected, and a client left with
    none neighbours everyone."""
    topology = setup.topology
    assert topology is not None
    nodes = list(topology.clients[:n])
    rank = {node: c for c, node in enumerate(nodes)}
    g: nx.Graph = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(
        (c, rank[m]) for c in range(n) for m in topology.neighbours(nodes[c]) if m in rank
    )
    for c in [c for c in range(n) if g.degree(c) == 0]:
        g.add_edges_from((c, other) for other in range(n) if other != c)
    return g


@pytest.mark.parametrize(
    ("cfg", "n", "kind"),
    [
        (NetworkConfig(topology="star"), 7, GroupNeighbours),
        (NetworkConfig(topology="mec", cells=3), 10, GroupNeighbours),
        # 5 clients in cells of 2: the last cell holds one, who neighbours everyone.
        (NetworkConfig(topology="mec", cells=3), 5, GraphNeighbours),
        (NetworkConfig(topology="mec", cells=2, d2d_mbps=50), 9, GraphNeighbours),
        (NetworkConfig(topology="random_geometric"), 12, GraphNeighbours),
    ],
)
def test_neighbours_are_those_of_the_explicit_graph(cfg: NetworkConfig, n: int, kind: type) -> None:
    setup = build.build_network(cfg, n, seed=3)
    neighbours = setup.neighbours
    assert isinstance(neighbours, kind)
    oracle = _old_graph(setup, n)
    assert list(neighbours.clients) == list(range(n))
    for c in range(n):
        assert list(neighbours.of(c)) == sorted(oracle.neighbors(c)), c
    # Same draws, same walk, as over the explicit graph.
    walk = random_walk_route(neighbours, 50, np.random.default_rng(7))
    assert walk == random_walk_route(GraphNeighbours(oracle), 50, np.random.default_rng(7))


def test_ideal_network_neighbours_every_client() -> None:
    neighbours = build.build_network(NetworkConfig(), 5, seed=0).neighbours
    assert [list(neighbours.of(c)) for c in (0, 4)] == [[1, 2, 3, 4], [0, 1, 2, 3]]


@pytest.mark.parametrize("cfg", [NetworkConfig(topology="star"), NetworkConfig(topology="mec")])
def test_neighbour_entries_grow_linearly(cfg: NetworkConfig) -> None:
    # A star's n clients all neighbour each other: n (n - 1) pairs, 10^8 at 10,000 clients.
    # What is held is each client's group once: 2n ids.
    held = {n: build.build_network(cfg, n, seed=0).neighbours.entries() for n in (1000, 10_000)}
    assert held == {1000: 2000, 10_000: 20_000}
    big = build.build_network(cfg, 10_000, seed=0).neighbours
    assert len(big.of(1234)) == (9999 if cfg.topology == "star" else 10_000 // cfg.cells - 1)


def test_paths_to_and_from_the_cloud_take_one_search_each_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A round's downloads and uploads on a star of n clients: 2n paths from two tree searches
    (one from the cloud, one to it), not a search per client."""
    searches: list[str] = []
    search, pair_search = Topology._search, Topology._pair_search

    def counted_search(self: Topology, source: str, *, reverse: bool) -> dict:
        searches.append("tree")
        return search(self, source, reverse=reverse)

    def counted_pair(self: Topology, src: str, dst: str) -> tuple[str, ...]:
        searches.append("pair")
        return pair_search(self, src, dst)

    monkeypatch.setattr(Topology, "_search", counted_search)
    monkeypatch.setattr(Topology, "_pair_search", counted_pair)
    topology = build.build_topology(NetworkConfig(topology="star"), 5000, seed=0)
    for c in topology.clients:
        assert topology.path(topology.cloud, c) == (topology.cloud, c)
        assert topology.path(c, topology.cloud) == (c, topology.cloud)
    assert searches == ["tree", "tree"]
