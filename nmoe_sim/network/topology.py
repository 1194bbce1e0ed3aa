"""Network topologies: who links to whom, at what bandwidth and latency, and the paths taken.

A `Topology` wraps a `networkx.DiGraph`. Nodes carry `role` ("cloud", "edge" or "client") and
`device_class`; edges carry `bandwidth_mbps` (> 0), `latency_ms` (>= 0) and `loss_rate` (in [0, 1):
the share of packets the link loses, which the `tcp` transport turns into a throughput bound). A
symmetric link is two directed edges. Topologies come from YAML files users write
(`load_topology`) or from generators (`star`, `mec`, `random_geometric`).

Paths: least total latency; ties go to fewer hops, then to the lexicographically smallest sequence
of node names. Latencies are compared as integer nanoseconds so that the choice never depends on the
order in which floating-point sums happen to be taken.
"""

from __future__ import annotations

import difflib
import heapq
import itertools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import networkx as nx
import numpy as np

from nmoe_sim.config import MAX_LATENCY_MS, MAX_LINKS, MAX_MBPS, MIN_MBPS
from nmoe_sim.safe_yaml import YamlInputError, load_text, read_text

ROLES = ("cloud", "edge", "client")
CLOUD_NODE = "cloud"

_TOP_KEYS = ("nodes", "links", "description")
_NODE_KEYS = ("name", "role", "device_class", "x_m", "y_m")
_NODE_REQUIRED = ("name", "role", "device_class")
MAX_POSITION_M = 1e6  # node positions (x_m, y_m) beyond a thousand kilometres are mistakes
_LINK_KEYS = ("a", "b", "bandwidth_mbps", "latency_ms", "loss_rate", "directed")
_LINK_REQUIRED = ("a", "b", "bandwidth_mbps", "latency_ms")

# What a topology file may hold: beyond these the simulator would not finish (every client is
# simulated), and the file would be mistaken.
MAX_FILE_BYTES = 64_000_000
MAX_NODES = 100_000

NodePath = tuple[str, ...]
_Label = tuple[int, int, NodePath]  # (latency ns, hops, path): the total order paths are chosen by


_EMPTY = object()  # load_text's answer for a file without a document


class TopologyError(ValueError):
    """A topology that cannot be used; the message says what is wrong and how to fix it."""


def _latency_ns(latency_ms: float) -> int:
    return round(latency_ms * 1_000_000)


@dataclass(frozen=True)
class Topology:
    """A validated network graph with cached least-latency paths.

    Treat `graph` as read-only once wrapped: paths and relay client lists are cached.
    """

    graph: nx.DiGraph
    _paths: dict[tuple[str, str], NodePath] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    # Full shortest-path trees from / to hub nodes (non-clients): one search answers every client.
    _from_tree: dict[str, dict[str, NodePath]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _to_tree: dict[str, dict[str, NodePath]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    # Per hub h, the component of G - h (links undirected) of each node looked at so far, named by
    # the node its search started from: which client pairs h separates.
    _sides: dict[str, dict[str, str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _ns: dict[float, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    _min_out: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    _relay_clients: dict[str, tuple[str, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _clients: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)
    _client_rank: dict[str, int] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _cloud: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.graph, nx.DiGraph):
            raise TopologyError(
                f"a Topology wraps a networkx.DiGraph, got {type(self.graph).__name__}; "
                "build links as two directed edges (or use load_topology)"
            )
        self.validate()
        roles = self.graph.nodes.data("role")
        clients = tuple(n for n, r in roles if r == "client")
        object.__setattr__(self, "_clients", clients)
        object.__setattr__(self, "_client_rank", {n: i for i, n in enumerate(clients)})
        object.__setattr__(self, "_cloud", next(n for n, r in roles if r == "cloud"))

    # ---------------------------------------------------------------- structure

    @property
    def clients(self) -> tuple[str, ...]:
        """Client node names in the graph's node order (file order / generator order)."""
        return self._clients

    @property
    def cloud(self) -> str:
        """The one cloud (server) node."""
        return self._cloud

    def role(self, node: str) -> str:
        self._require(node)
        return self.graph.nodes[node]["role"]

    def device_class(self, node: str) -> str:
        self._require(node)
        return self.graph.nodes[node]["device_class"]

    def neighbours(self, node: str) -> tuple[str, ...]:
        """Clients a random walk can step to from client `node`, in `clients` order.

        Clients it has a direct (device-to-device) link to; a client with none steps to the other
        clients behind the same non-client node(s) it links to (its cell-mates through a base
        station or the cloud). Empty only for a lone client.
        """
        if self.role(node) != "client":
            raise TopologyError(f"neighbours() is for clients; {node!r} is a {self.role(node)}")
        succ = self.graph.succ[node]
        rank = self._client_rank
        direct = [v for v in succ if v in rank]
        if direct:
            return tuple(sorted(direct, key=rank.__getitem__))
        mates: set[str] = set()
        for relay in succ:
            mates.update(self._clients_behind(relay))
        mates.discard(node)
        return tuple(sorted(mates, key=rank.__getitem__))

    def _clients_behind(self, relay: str) -> tuple[str, ...]:
        cached = self._relay_clients.get(relay)
        if cached is None:
            rank = self._client_rank
            cached = tuple(v for v in self.graph.succ[relay] if v in rank)
            self._relay_clients[relay] = cached
        return cached

    def rewire(
        self, remove: Sequence[tuple[str, str]], add: Sequence[tuple[str, str, dict[str, float]]]
    ) -> None:
        """Remove and add directed links (a handover moves a client's access links), then forget
        every cached path. Only a topology of one simulated world is rewired (each world has its
        own copy: `copy()`); the nodes stay as they are."""
        g = self.graph
        g.remove_edges_from(remove)
        g.add_edges_from(add)
        for cache in (self._paths, self._from_tree, self._to_tree, self._sides, self._min_out):
            cache.clear()
        self._relay_clients.clear()

    def copy(self) -> Topology:
        """The same network with a graph of its own (its links can be rewired)."""
        return Topology(self.graph.copy())

    # ---------------------------------------------------------------- paths

    def path(self, src: str, dst: str) -> NodePath:
        """Least-latency path from `src` to `dst` (both included); `(src,)` when they are equal."""
        key = (src, dst)
        found = self._paths.get(key)
        if found is not None:
            return found
        self._require(src)
        self._require(dst)
        if src == dst:
            found = (src,)
        elif dst in self._to_tree:
            found = self._to_tree[dst][src]
        elif src in self._from_tree:
            found = self._from_tree[src][dst]
        elif self.graph.nodes[dst]["role"] != "client":
            # Hubs (cloud, base stations) are where most traffic goes: one reverse search gives
            # every node's path to them.
            found = self._tree(dst, reverse=True)[src]
        elif self.graph.nodes[src]["role"] != "client":
            found = self._tree(src, reverse=False)[dst]
        else:
            found = (
                self._direct(src, dst)
                or self._through_cut_hub(src, dst)
                or self._pair_search(src, dst)
            )
        self._paths[key] = found
        return found

    def path_latency_s(self, path: Sequence[str]) -> float:
        """Sum of the links' latencies along `path`, in seconds (0 for a single node)."""
        succ = _succ(self.graph)  # the adjacency dicts: the public view costs a call per lookup
        total_ms = 0.0
        for u, v in itertools.pairwise(path):
            attrs = succ[u].get(v) if u in succ else None
            if attrs is None:
                raise TopologyError(f"no link {u!r} -> {v!r} on path {tuple(path)}")
            total_ms += attrs["latency_ms"]
        return total_ms / 1e3

    def link(self, u: str, v: str) -> Mapping[str, Any]:
        """Attributes of the directed link u -> v (bandwidth_mbps, latency_ms, loss_rate)."""
        attrs = self.graph.succ[u].get(v) if u in self.graph else None
        if attrs is None:
            raise TopologyError(f"no link {u!r} -> {v!r}")
        return attrs

    def _ns_of(self, latency_ms: float) -> int:
        ns = self._ns.get(latency_ms)
        if ns is None:
            ns = self._ns[latency_ms] = _latency_ns(latency_ms)
        return ns

    def _min_out_ns(self, node: str) -> int:
        found = self._min_out.get(node)
        if found is None:
            found = self._min_out[node] = _latency_ns(
                min(attrs["latency_ms"] for attrs in _succ(self.graph)[node].values())
            )
        return found

    def _search(self, source: str, *, reverse: bool) -> dict[str, NodePath]:
        """Every node's best path from `source` (or, reversed, to it): Dijkstra on full labels.

        The label order (latency, hops, path) survives appending or prepending a common node, so
        optimal paths have optimal sub-paths and the search is exact in both directions.
        """
        # networkx's adjacency dicts, read only: the public views cost a Python call per item.
        adj = _pred(self.graph) if reverse else _succ(self.graph)
        ns_of = self._ns_of
        best: dict[str, _Label] = {source: (0, 0, (source,))}
        heap: list[tuple[int, int, NodePath, str]] = [(0, 0, (source,), source)]
        done: dict[str, NodePath] = {}
        while heap:
            lat, hops, p, u = heapq.heappop(heap)
            if u in done:
                continue
            done[u] = p
            nh = hops + 1
            for v, attrs in adj[u].items():
                if v in done:
                    continue
                nl = lat + ns_of(attrs["latency_ms"])
                b = best.get(v)
                if b is not None and (nl > b[0] or (nl == b[0] and nh > b[1])):
                    continue  # cheap rejection before building the path tuple
                np_ = (v, *p) if reverse else (*p, v)
                if b is not None and (nl, nh, np_) >= b:
                    continue
                best[v] = (nl, nh, np_)
                heapq.heappush(heap, (nl, nh, np_, v))
        return done

    def _direct(self, src: str, dst: str) -> NodePath | None:
        """The link src -> dst where no other way out of src is faster: any other path starts
        with a link at least as slow and has more hops. None otherwise."""
        link = _succ(self.graph)[src].get(dst)
        if link is not None and self._ns_of(link["latency_ms"]) <= self._min_out_ns(src):
            return (src, dst)
        return None

    def _through_cut_hub(self, src: str, dst: str) -> NodePath | None:
        """The path between two clients when a hub next to either one separates them (every
        path crosses it: a cell's base station, a star's cloud): the best path to the hub, then
        the best from it, both from the hub's cached trees. That is exactly the pair search's
        answer: the two halves cannot share a node but the hub, and (latency, hops, names)
        splits at it, so the best whole is the best halves. A pair search from a client walks
        its cell's device-to-device clique first (1.4 ms a pair at 1,000 clients); this costs
        one search of each side per hub. None where no such hub is found."""
        succ, pred, nodes = _succ(self.graph), _pred(self.graph), self.graph.nodes
        for end in (src, dst):
            for hub in itertools.chain(succ[end], pred[end]):
                if nodes[hub]["role"] == "client" or not self._separates(hub, src, dst):
                    continue
                return self._tree(hub, reverse=True)[src] + self._tree(hub, reverse=False)[dst][1:]
        return None

    def _tree(self, hub: str, *, reverse: bool) -> dict[str, NodePath]:
        """Every node's best path to `hub` (reverse) or from it: one search, kept."""
        trees = self._to_tree if reverse else self._from_tree
        tree = trees.get(hub)
        if tree is None:
            tree = trees[hub] = self._search(hub, reverse=reverse)
        return tree

    def _separates(self, hub: str, a: str, b: str) -> bool:
        """Whether every path between `a` and `b` crosses `hub` (neither is the hub)."""
        side = self._sides.setdefault(hub, {})
        if a not in side:  # label a's component of the graph without the hub
            succ, pred = _succ(self.graph), _pred(self.graph)
            side[a] = a
            stack = [a]
            while stack:
                u = stack.pop()
                for v in itertools.chain(succ[u], pred[u]):
                    if v != hub and v not in side:
                        side[v] = a
                        stack.append(v)
        return side.get(b) != side[a]

    def _pair_search(self, src: str, dst: str) -> NodePath:
        """Dijkstra from `src` that stops as soon as nothing left can beat the best `dst` path."""
        adj = _succ(self.graph)
        ns_of = self._ns_of
        best: dict[str, _Label] = {src: (0, 0, (src,))}
        heap: list[tuple[int, int, NodePath, str]] = [(0, 0, (src,), src)]
        done: set[str] = set()
        bound: tuple[int, int] | None = None  # (latency, hops) of the best dst path so far
        while heap:
            lat, hops, p, u = heapq.heappop(heap)
            if u in done:
                continue
            if u == dst:
                return p
            nh = hops + 1
            # Every later path has latency >= lat and at least nh hops: if that loses to the
            # bound, the dst label is final.
            if bound is not None and (lat, nh) > bound:
                break
            done.add(u)
            for v, attrs in adj[u].items():
                if v in done:
                    continue
                nl = lat + ns_of(attrs["latency_ms"])
                if bound is not None and v != dst and (nl, nh + 1) > bound:
                    continue
                b = best.get(v)
                if b is not None and (nl > b[0] or (nl == b[0] and nh > b[1])):
                    continue  # cheap rejection before building the path tuple (a cell's d2d
                    # clique offers every member a worse way to every other member)
                np_ = (*p, v)
                if b is not None and (nl, nh, np_) >= b:
                    continue
                best[v] = (nl, nh, np_)
                heapq.heappush(heap, (nl, nh, np_, v))
                if v == dst:
                    bound = (nl, nh)
        if dst in best:
            return best[dst][2]
        raise TopologyError(f"no path from {src!r} to {dst!r}")  # validate() rules this out

    # ---------------------------------------------------------------- validation

    def _require(self, node: str) -> None:
        if node not in self.graph:
            raise TopologyError(f"unknown node {node!r}; the topology has no node of that name")

    def validate(self) -> None:
        """Refuse graphs the simulator cannot use; raises TopologyError naming the problem."""
        g = self.graph
        clouds = []
        for name, attrs in g.nodes(data=True):
            role = attrs.get("role")
            if role is None:
                raise TopologyError(
                    f"node {name!r} has no role; a link names a node that is not declared, or the "
                    f"node lacks `role` (one of {', '.join(ROLES)})"
                )
            if role not in ROLES:
                raise TopologyError(
                    f"node {name!r} has role {role!r}; use one of {', '.join(ROLES)}"
                )
            dc = attrs.get("device_class")
            if not isinstance(dc, str) or not dc:
                raise TopologyError(
                    f"node {name!r} needs a device_class (a non-empty string such as 'phone')"
                )
            if role == "cloud":
                clouds.append(name)
        if not clouds:
            raise TopologyError(
                "the topology has no cloud node; add exactly one node with role: cloud"
            )
        if len(clouds) > 1:
            raise TopologyError(
                f"the topology has {len(clouds)} cloud nodes ({', '.join(map(repr, clouds[:5]))}); "
                "keep exactly one and make the others role: edge"
            )
        # Generators repeat the same few float triples a million times: check each once.
        checked: set[tuple[float, float, float]] = set()
        for u, nbrs in _succ(g).items():
            if u in nbrs:
                raise TopologyError(f"link {u!r} -> {u!r} is a self-loop; remove it")
            for v, attrs in nbrs.items():
                bw = attrs.get("bandwidth_mbps")
                lat = attrs.get("latency_ms")
                loss = attrs.get("loss_rate", 0.0)
                if type(bw) is float and type(lat) is float and type(loss) is float:
                    if (bw, lat, loss) in checked:
                        continue
                    _check_link_numbers(f"link {u!r} -> {v!r}", bw, lat, loss)
                    checked.add((bw, lat, loss))
                else:
                    _check_link_numbers(f"link {u!r} -> {v!r}", bw, lat, loss)
        _check_strongly_connected(g, clouds[0])


def _is_number(x: object) -> TypeGuard[int | float | np.integer | np.floating]:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)


def _finite(x: object) -> TypeGuard[int | float | np.integer | np.floating]:
    try:
        return _is_number(x) and math.isfinite(x)
    except OverflowError:  # an int beyond any float
        return False


def _check_link_numbers(where: str, bw: object, lat: object, loss: object) -> None:
    if not _finite(bw) or bw <= 0:
        raise TopologyError(
            f"{where}: bandwidth_mbps must be a positive number of megabits per second, got {bw!r}"
        )
    if not _finite(lat) or lat < 0:
        raise TopologyError(
            f"{where}: latency_ms must be a number of milliseconds >= 0, got {lat!r}"
        )
    if not _finite(loss) or not 0 <= loss < 1:
        raise TopologyError(f"{where}: loss_rate must be in [0, 1), got {loss!r}")


# networkx's adjacency dicts, read only (node -> neighbour -> edge attributes): the public views
# cost a Python call per item. They are private, so types-networkx does not declare them.
_Adjacency = Mapping[str, Mapping[str, dict[str, Any]]]


def _succ(g: nx.DiGraph[str]) -> _Adjacency:
    return g._succ  # type: ignore[attr-defined]  # private networkx attribute, not in the stubs


def _pred(g: nx.DiGraph[str]) -> _Adjacency:
    return g._pred  # type: ignore[attr-defined]  # private networkx attribute, not in the stubs


def _reach(adj: Mapping[str, Mapping[str, Any]], start: str) -> set[str]:
    seen = {start}
    stack = [start]
    while stack:
        for v in adj[stack.pop()]:
            if v not in seen:
                seen.add(v)
                stack.append(v)
    return seen


def _check_strongly_connected(g: nx.DiGraph, cloud: str) -> None:
    # Strongly connected iff every node is reachable from the cloud and reaches it.
    n = g.number_of_nodes()
    hint = "add a link (links in YAML are symmetric unless `directed: true`)"
    forward = _reach(_succ(g), cloud)
    if len(forward) < n:
        lost = next(x for x in g if x not in forward)
        raise TopologyError(
            f"topology is not connected: no path from {cloud!r} to {lost!r}; {hint}"
        )
    backward = _reach(_pred(g), cloud)
    if len(backward) < n:
        lost = next(x for x in g if x not in backward)
        raise TopologyError(
            f"topology is not connected: no path from {lost!r} to {cloud!r}; {hint}"
        )


# -------------------------------------------------------------------- loading


def _unknown_keys(where: str, got: Mapping[str, Any], allowed: Sequence[str]) -> None:
    for key in got:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TopologyError(
                f"{where}: unknown key {key!r}{hint} (allowed: {', '.join(allowed)})"
            )


def _file_numbers(where: str, bw: object, lat: object, loss: object) -> None:
    """A file's link numbers: finite, of the right sign, and within what a real link can be."""
    _check_link_numbers(where, bw, lat, loss)
    assert _is_number(bw) and _is_number(lat)
    if not MIN_MBPS <= bw <= MAX_MBPS:
        raise TopologyError(
            f"{where}: bandwidth_mbps {bw!r} is outside {MIN_MBPS:g}..{MAX_MBPS:g} Mbit/s"
        )
    if lat > MAX_LATENCY_MS:
        raise TopologyError(
            f"{where}: latency_ms {lat!r} is above {MAX_LATENCY_MS:g} ms (one minute per link)"
        )


def _node_position(where: str, node: Mapping[str, Any]) -> dict[str, float]:
    """A node's optional position in metres: both of x_m and y_m, finite, within bounds."""
    given = [k for k in ("x_m", "y_m") if k in node]
    if not given:
        return {}
    if len(given) == 1:
        raise TopologyError(f"{where}: give both x_m and y_m (a position in metres) or neither")
    out = {}
    for key in ("x_m", "y_m"):
        value = node[key]
        if not _finite(value) or not -MAX_POSITION_M <= float(value) <= MAX_POSITION_M:
            raise TopologyError(
                f"{where}: {key} must be a number of metres within +-{MAX_POSITION_M:g}, "
                f"got {value!r}"
            )
        out[key] = float(value)
    return out


def load_topology(source: str | os.PathLike[str] | Mapping[str, Any]) -> Topology:
    """A topology from a YAML file (path) or an already-parsed mapping.

    Schema: `nodes:` a list of {name, role, device_class, and optionally x_m, y_m: a position in
    metres for mobility and radio models}; `links:` a list of {a, b, bandwidth_mbps,
    latency_ms, loss_rate (default 0), directed (default false: the link exists both ways with the
    same numbers)}; an optional `description:` string. Unknown keys are refused. A file must be
    UTF-8 YAML (read by the bounded loader of safe_yaml.py: no duplicate keys, alias bombs, deep
    nesting), at most MAX_NODES nodes and MAX_LINKS links, with link numbers in
    MIN_MBPS..MAX_MBPS Mbit/s and 0..MAX_LATENCY_MS ms.
    """
    if isinstance(source, Mapping):
        spec: Any = source
        origin = "topology"
    else:
        file = Path(source)
        origin = str(file)
        if not file.is_file():
            raise TopologyError(f"topology file {origin} not found")
        try:
            spec = load_text(read_text(file, "topology", MAX_FILE_BYTES), origin, _EMPTY)
        except YamlInputError as err:
            raise TopologyError(str(err)) from None
        if spec is _EMPTY:
            raise TopologyError(f"empty topology: {origin} (expected `nodes:` and `links:`)")
    if not isinstance(spec, Mapping):
        raise TopologyError(f"{origin}: expected a mapping with `nodes:` and `links:`")
    _unknown_keys(origin, spec, _TOP_KEYS)
    for key in ("nodes", "links"):
        if not isinstance(spec.get(key), list) or not spec[key]:
            raise TopologyError(f"{origin}: `{key}:` must be a non-empty list")
    for key, most in (("nodes", MAX_NODES), ("links", MAX_LINKS)):
        if len(spec[key]) > most:
            raise TopologyError(
                f"{origin}: {len(spec[key]):,} {key}; a topology file may have at most {most:,}"
            )
    if not isinstance(spec.get("description", ""), str):
        raise TopologyError(f"{origin}: description must be a string")

    g: nx.DiGraph[str] = nx.DiGraph()
    for i, node in enumerate(spec["nodes"]):
        where = f"{origin}: nodes[{i}]"
        if not isinstance(node, Mapping):
            raise TopologyError(f"{where}: expected a mapping like {{name: u0, role: client, ...}}")
        _unknown_keys(where, node, _NODE_KEYS)
        for key in _NODE_REQUIRED:
            if key not in node:
                raise TopologyError(f"{where}: missing `{key}`")
        position = _node_position(where, node)
        name = node["name"]
        if not isinstance(name, str) or not name:
            raise TopologyError(
                f"{where}: name must be a non-empty string (quote numbers), got {name!r}"
            )
        if name in g:
            raise TopologyError(f"{where}: node {name!r} is declared twice")
        role, device_class = node["role"], node["device_class"]
        if not isinstance(role, str) or role not in ROLES:
            raise TopologyError(f"{where}: role {role!r}; use one of {', '.join(ROLES)}")
        if not isinstance(device_class, str) or not device_class:
            raise TopologyError(
                f"{where}: device_class must be a non-empty string such as 'phone', "
                f"got {device_class!r}"
            )
        g.add_node(name, role=role, device_class=device_class, **position)

    edges: list[tuple[str, str, dict[str, float]]] = []
    seen: set[tuple[str, str]] = set()
    for i, link in enumerate(spec["links"]):
        where = f"{origin}: links[{i}]"
        if not isinstance(link, Mapping):
            raise TopologyError(
                f"{where}: expected a mapping like {{a: x, b: y, bandwidth_mbps: ...}}"
            )
        _unknown_keys(where, link, _LINK_KEYS)
        for key in _LINK_REQUIRED:
            if key not in link:
                raise TopologyError(f"{where}: missing `{key}`")
        a, b = link["a"], link["b"]
        for end in (a, b):
            if not isinstance(end, str):
                raise TopologyError(
                    f"{where}: a and b name nodes (strings; quote numbers), got {end!r}"
                )
            if end not in g:
                raise TopologyError(
                    f"{where}: unknown node {end!r}; declare it under `nodes:` or fix the name"
                )
        directed = link.get("directed", False)
        if not isinstance(directed, bool):
            raise TopologyError(f"{where}: directed must be true or false, got {directed!r}")
        attrs = {
            "bandwidth_mbps": link["bandwidth_mbps"],
            "latency_ms": link["latency_ms"],
            "loss_rate": link.get("loss_rate", 0.0),
        }
        _file_numbers(f"{where} ({a} - {b})", *attrs.values())
        attrs = {k: float(v) for k, v in attrs.items()}
        for u, v in [(a, b)] if directed else [(a, b), (b, a)]:
            if (u, v) in seen:
                raise TopologyError(f"{where}: link {u!r} -> {v!r} is declared twice")
            seen.add((u, v))
            edges.append((u, v, attrs))
    g.add_edges_from(edges)
    return Topology(g)


# -------------------------------------------------------------------- generators


def link_attrs(
    bandwidth_mbps: float, latency_ms: float, loss_rate: float = 0.0
) -> dict[str, float]:
    """A link's attributes as the generators (and a handover's new d2d links) make them."""
    return {
        "bandwidth_mbps": float(bandwidth_mbps),
        "latency_ms": float(latency_ms),
        "loss_rate": float(loss_rate),
    }


def _need_count(what: str, value: int, minimum: int = 1) -> None:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < minimum:
        raise TopologyError(f"{what} must be an integer >= {minimum}, got {value!r}")


def star(
    num_clients: int,
    bandwidth_mbps: float,
    latency_ms: float,
    *,
    loss_rate: float = 0.0,
    uplink_mbps: float | None = None,
    client_class: str = "phone",
    hub_class: str = "server",
) -> Topology:
    """One cell: a hub (the cloud node, a server at the base station) linked both ways to each
    client `c0..c{n-1}` (`bandwidth_mbps` to the client, `uplink_mbps` from it: default the
    same); every link loses `loss_rate` of its packets."""
    _need_count("num_clients", num_clients)
    g: nx.DiGraph[str] = nx.DiGraph()
    g.add_node(CLOUD_NODE, role="cloud", device_class=hub_class)
    down = link_attrs(bandwidth_mbps, latency_ms, loss_rate)
    up = down if uplink_mbps is None else link_attrs(uplink_mbps, latency_ms, loss_rate)
    edges = []
    for i in range(num_clients):
        c = f"c{i}"
        g.add_node(c, role="client", device_class=client_class)
        edges += [(CLOUD_NODE, c, down), (c, CLOUD_NODE, up)]
    g.add_edges_from(edges)
    return Topology(g)


def mec(
    num_cells: int,
    clients_per_cell: int,
    *,
    access_mbps: float,
    access_latency_ms: float,
    backhaul_mbps: float,
    backhaul_latency_ms: float,
    d2d_mbps: float | None = None,
    d2d_latency_ms: float = 1.0,
    loss_rate: float = 0.0,
    uplink_mbps: float | None = None,
    client_class: str = "phone",
    edge_class: str = "edge_server",
    cloud_class: str = "server",
) -> Topology:
    """Multi-cell mobile edge network: cloud - base stations `bs{j}` - clients `c{i}`.

    Client `c{i}` sits in cell `i // clients_per_cell`. Every link is symmetric but the access
    links with `uplink_mbps` (from the client; `access_mbps` is then the downlink). With `d2d_mbps`,
    every pair of clients in a cell also gets a direct device-to-device link (clients_per_cell^2
    directed links per cell). Client links (access, d2d) lose `loss_rate` of their packets; the
    wired backhaul none.
    """
    _need_count("num_cells", num_cells)
    _need_count("clients_per_cell", clients_per_cell)
    g: nx.DiGraph[str] = nx.DiGraph()
    g.add_node(CLOUD_NODE, role="cloud", device_class=cloud_class)
    backhaul = link_attrs(backhaul_mbps, backhaul_latency_ms)
    access = link_attrs(access_mbps, access_latency_ms, loss_rate)
    up = access if uplink_mbps is None else link_attrs(uplink_mbps, access_latency_ms, loss_rate)
    d2d = None if d2d_mbps is None else link_attrs(d2d_mbps, d2d_latency_ms, loss_rate)
    edges: list[tuple[str, str, dict[str, float]]] = []
    for cell in range(num_cells):
        bs = f"bs{cell}"
        g.add_node(bs, role="edge", device_class=edge_class)
        edges += [(CLOUD_NODE, bs, backhaul), (bs, CLOUD_NODE, backhaul)]
        first = cell * clients_per_cell
        members = [f"c{i}" for i in range(first, first + clients_per_cell)]
        g.add_nodes_from(members, role="client", device_class=client_class)
        for c in members:
            edges += [(bs, c, access), (c, bs, up)]
        if d2d is not None:
            edges += [(a, b, d2d) for a in members for b in members if a != b]
    g.add_edges_from(edges)
    return Topology(g)


def random_geometric(
    num_clients: int,
    radius: float,
    rng: np.random.Generator,
    *,
    bandwidth_mbps: float = 50.0,
    min_bandwidth_fraction: float = 0.1,
    latency_ms: float = 2.0,
    cloud_mbps: float = 1000.0,
    cloud_latency_ms: float = 20.0,
    loss_rate: float = 0.0,
    grow_radius: bool = True,
    growth: float = 1.25,
    client_class: str = "phone",
    cloud_class: str = "server",
) -> Topology:
    """Clients `c{i}` uniform in the unit square (`pos` attribute), a symmetric link between every
    two within the radius, and the cloud linked to the client nearest the centre.

    A link over distance d carries `bandwidth_mbps * (1 - (1 - min_bandwidth_fraction) * d / r)`
    (full rate next door, `min_bandwidth_fraction` of it at the radius) with `latency_ms` per hop.
    If the clients are not connected at `radius`, the radius grows by `growth` until they are
    (`grow_radius=True`, the final radius is `graph.graph["radius"]`), else TopologyError. Every
    link touches a client and loses `loss_rate` of its packets.
    """
    _need_count("num_clients", num_clients)
    if not radius > 0:
        raise TopologyError(f"radius must be > 0, got {radius!r}")
    if not 0 < min_bandwidth_fraction <= 1:
        raise TopologyError(
            f"min_bandwidth_fraction must be in (0, 1], got {min_bandwidth_fraction!r}"
        )
    if grow_radius and not growth > 1:
        raise TopologyError(f"growth must be > 1, got {growth!r}")
    pos = rng.random((num_clients, 2))
    xs, ys = pos[:, 0].tolist(), pos[:, 1].tolist()
    r = float(radius)
    while True:
        pairs = _pairs_within(xs, ys, r)
        parts = _components(num_clients, pairs)
        if parts == 1:
            break
        if not grow_radius:
            raise TopologyError(
                f"random_geometric: {num_clients} clients at radius {r:g} fall into {parts} "
                "disconnected groups; raise the radius or pass grow_radius=True"
            )
        r = min(r * growth, math.sqrt(2.0))  # at sqrt(2) every pair links: always connected

    g: nx.DiGraph[str] = nx.DiGraph(radius=r)
    g.add_node(CLOUD_NODE, role="cloud", device_class=cloud_class)
    names = [f"c{i}" for i in range(num_clients)]
    for i, c in enumerate(names):
        g.add_node(c, role="client", device_class=client_class, pos=(xs[i], ys[i]))
    edges = []
    slope = (1.0 - min_bandwidth_fraction) / r
    for i, j, d in pairs:
        attrs = link_attrs(bandwidth_mbps * (1.0 - slope * d), latency_ms, loss_rate)
        edges += [(names[i], names[j], attrs), (names[j], names[i], attrs)]
    centre = int(np.argmin((pos[:, 0] - 0.5) ** 2 + (pos[:, 1] - 0.5) ** 2))
    up = link_attrs(cloud_mbps, cloud_latency_ms, loss_rate)
    edges += [(CLOUD_NODE, names[centre], up), (names[centre], CLOUD_NODE, up)]
    g.add_edges_from(edges)
    return Topology(g)


def _pairs_within(xs: list[float], ys: list[float], r: float) -> list[tuple[int, int, float]]:
    """(i, j, distance) for i < j within r, via a grid of r-sized cells: O(n + pairs), not n^2."""
    cells: dict[tuple[int, int], list[int]] = {}
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        cells.setdefault((int(x / r), int(y / r)), []).append(i)
    r2 = r * r
    out = []
    for (cx, cy), members in cells.items():
        for dx, dy in ((0, 0), (1, -1), (1, 0), (1, 1), (0, 1)):  # each neighbouring cell once
            other = cells.get((cx + dx, cy + dy))
            if other is None:
                continue
            same = dx == 0 and dy == 0
            for a_pos, i in enumerate(members):
                xi, yi = xs[i], ys[i]
                for j in other[a_pos + 1 :] if same else other:
                    d2 = (xs[j] - xi) ** 2 + (ys[j] - yi) ** 2
                    if d2 <= r2:
                        out.append((min(i, j), max(i, j), math.sqrt(d2)))
    out.sort()
    return out


def _components(n: int, pairs: list[tuple[int, int, float]]) -> int:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    parts = n
    for i, j, _ in pairs:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[ri] = rj
            parts -= 1
    return parts


def connecting_radius(topology: Topology) -> float:
    """The smallest link radius that connects the clients of a `random_geometric` topology: the
    longest edge of their Euclidean minimum spanning tree (from the clients' `pos`)."""
    g = topology.graph
    clients = topology.clients
    xs = [float(g.nodes[c]["pos"][0]) for c in clients]
    ys = [float(g.nodes[c]["pos"][1]) for c in clients]
    # Every MST edge is within the generator's (connected) final radius.
    pairs = sorted(_pairs_within(xs, ys, float(g.graph["radius"])), key=lambda p: p[2])
    parent = list(range(len(clients)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    longest, joined = 0.0, 1
    for i, j, d in pairs:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[ri] = rj
            longest, joined = d, joined + 1
            if joined == len(clients):
                break
    return longest
