"""Turn a scenario's `network` section into the run's network: topology, link model, neighbours."""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import networkx as nx
import simpy

from nmoe_sim.config import GENERATED_TOPOLOGIES, NetworkConfig, ScenarioError
from nmoe_sim.network.channel import IdealNetwork, NetworkModel
from nmoe_sim.network.devices import SERVER, client_node
from nmoe_sim.network.dynamics.links import DynamicsError, LinkChanges, build_link_changes
from nmoe_sim.network.dynamics.schema import DynamicsConfig
from nmoe_sim.network.flows import FlowNetwork
from nmoe_sim.network.mobility.attachment import Mobility
from nmoe_sim.network.mobility.layout import LayoutError
from nmoe_sim.network.mobility.models.trace import PositionTraceError
from nmoe_sim.network.mobility.moving import MovingNetwork
from nmoe_sim.network.mobility.pathloss import PATH_LOSS, macro
from nmoe_sim.network.neighbours import GraphNeighbours, GroupNeighbours, Neighbours
from nmoe_sim.network.radio.rates import Radio
from nmoe_sim.network.topology import (
    Topology,
    TopologyError,
    connecting_radius,
    link_attrs,
    load_topology,
    mec,
    random_geometric,
    star,
)
from nmoe_sim.network.transports import Transport, by_name
from nmoe_sim.problems import Severity
from nmoe_sim.seeds import numpy_rng


class _Renamed:
    """Speaks the run's node names (`server`, `c0`, ...) to a topology with its own names."""

    def __init__(self, inner: NetworkModel, names: dict[str, str]) -> None:
        self.inner = inner
        self.names = names

    def carry(
        self, env: simpy.Environment, src: str, dst: str, size_bytes: int
    ) -> Generator[Any, Any, tuple[str, ...]]:
        return self.inner.carry(env, self.names[src], self.names[dst], size_bytes)


@dataclass(frozen=True)
class NetworkSetup:
    make_network: Callable[[], NetworkModel]  # a fresh link model per simulated world
    # Which clients neighbour which (client ids; RanGate walks it), built on first use; a
    # star's is its one group of clients (2n ids), not its n (n - 1) pairs.
    make_neighbours: Callable[[], Neighbours]
    device_classes: list[str | None]  # per client, for devices.classes_gflops
    topology: Topology | None
    link_changes: LinkChanges | None = None  # the links that change over time, if any
    mobility: Mobility | None = None  # where clients are, and their handovers, if modelled

    @cached_property
    def neighbours(self) -> Neighbours:
        return self.make_neighbours()


def hub_groups(
    topology: Topology, nodes: list[str], rank: dict[str, int]
) -> GroupNeighbours | None:
    """The clients as groups behind their hubs, where that is the whole neighbour relation: no
    client links to another directly, each links to one hub, and no hub serves a lone client
    (a lone client neighbours everyone, and everyone it). Else None: build the graph."""
    groups: dict[str, list[int]] = {}
    for node in nodes:
        succ = topology.graph.succ[node]
        if len(succ) != 1:
            return None
        (hub,) = succ
        if topology.graph.nodes[hub]["role"] == "client":
            return None
        groups.setdefault(hub, []).append(rank[node])
    for hub, members in groups.items():
        behind = [rank[v] for v in topology.graph.succ[hub] if v in rank]
        if len(members) < 2 or sorted(behind) != sorted(members):
            return None  # a lone client, or links one way only (a topology file may say so)
    return GroupNeighbours(list(groups.values()))


def build_topology(cfg: NetworkConfig, num_clients: int, seed: int) -> Topology:
    up, down = cfg.access_mbps
    if cfg.topology == "star":
        return star(num_clients, down, cfg.latency_ms, loss_rate=cfg.loss, uplink_mbps=up)
    if cfg.topology == "mec":
        per_cell = math.ceil(num_clients / cfg.cells)
        return mec(
            cfg.cells,
            per_cell,
            access_mbps=down,
            uplink_mbps=up,
            access_latency_ms=cfg.latency_ms,
            backhaul_mbps=cfg.backhaul_mbps,
            backhaul_latency_ms=cfg.backhaul_latency_ms,
            d2d_mbps=cfg.d2d_mbps,
            d2d_latency_ms=cfg.d2d_latency_ms,
            loss_rate=cfg.loss,
        )
    if cfg.topology == "random_geometric":
        return _random_geometric(cfg, num_clients, seed)
    path = Path(cfg.topology)
    try:
        found = path.is_file()
    except (OSError, ValueError):
        found = False
    if not found:
        raise ScenarioError(
            f"network.topology: {cfg.topology!r} is neither ideal, "
            f"{', '.join(GENERATED_TOPOLOGIES)} nor an existing topology YAML file"
        )
    return load_topology(path)


def _random_geometric(cfg: NetworkConfig, num_clients: int, seed: int) -> Topology:
    """The default radius grows until the clients connect; a radius the user chose is kept,
    and refused (with the smallest radius that would connect these clients) when it does not."""
    chosen = "radius" in cfg.model_fields_set and cfg.radius != NetworkConfig().radius

    def build(grow: bool) -> Topology:
        return random_geometric(
            num_clients,
            cfg.radius,
            numpy_rng(seed, "topology"),
            bandwidth_mbps=cfg.bandwidth_mbps,
            latency_ms=cfg.latency_ms,
            loss_rate=cfg.loss,
            grow_radius=grow,
        )

    if not chosen:
        return build(True)
    try:
        return build(False)
    except TopologyError:
        needed = connecting_radius(build(True))
        shown = math.ceil(needed * 1000) / 1000
        raise ScenarioError(
            f"network.radius: {cfg.radius:g} leaves some of the {num_clients} clients "
            f"unconnected (positions of seed {seed}); the smallest radius that connects them "
            f"is {needed:.4f}: set network.radius={shown:g} or more, or leave the key out (the "
            "default grows until the clients connect)"
        ) from None


def make_transport(cfg: NetworkConfig) -> Transport:
    """A fresh transport for one simulated world (it keeps that world's connections), with the
    knobs of its section `network.<name>` where it has one (`network.tcp`)."""
    knobs = getattr(cfg, cfg.transport, None)
    return by_name(cfg.transport, **(knobs.model_dump() if knobs is not None else {}))


def build_network(cfg: NetworkConfig, num_clients: int, seed: int) -> NetworkSetup:
    clients = list(range(num_clients))
    if cfg.topology == "ideal":
        return NetworkSetup(
            IdealNetwork, lambda: GroupNeighbours([clients]), [None] * num_clients, None
        )
    try:
        topology = build_topology(cfg, num_clients, seed)
    except TopologyError as exc:  # a defect of the topology file (or of a generator's numbers)
        raise ScenarioError(f"network.topology: {exc}", Severity.VALUE) from None
    if len(topology.clients) < num_clients:
        raise ScenarioError(
            f"network.topology: {len(topology.clients)} client nodes for clients.count="
            f"{num_clients}; add client nodes or lower clients.count"
        )
    nodes = list(topology.clients[:num_clients])
    names = {SERVER: topology.cloud, **{client_node(c): nodes[c] for c in clients}}
    rank = {node: c for c, node in enumerate(nodes)}

    def make_neighbours() -> Neighbours:
        return hub_groups(topology, nodes, rank) or GraphNeighbours(neighbour_graph())

    def neighbour_graph() -> nx.Graph:
        neighbours: nx.Graph[int] = nx.Graph()
        neighbours.add_nodes_from(clients)
        neighbours.add_edges_from(
            (c, rank[n]) for c in clients for n in topology.neighbours(nodes[c]) if n in rank
        )
        # A client whose only topology neighbours are unused nodes (e.g. the last, partly
        # filled cell) can still reach every client through the cloud.
        for c in [c for c in clients if neighbours.degree(c) == 0]:
            neighbours.add_edges_from((c, other) for other in clients if other != c)
        return neighbours

    identity = all(k == v for k, v in names.items())
    mobility = _mobility(cfg, topology, seed, nodes)
    radio = None
    if cfg.radio.enabled:
        assert mobility is not None  # the radio model places clients on the layout
        radio = Radio(cfg.radio, mobility, seed)
    try:
        changes = build_link_changes(cfg.dynamics, topology, seed, radio)
    except DynamicsError as err:
        raise ScenarioError(str(err), _severity(err.unreadable, err.defect)) from None
    moves = mobility is not None and mobility.hands_over
    d2d = None
    if cfg.topology == "mec" and cfg.d2d_mbps is not None:  # generated d2d links follow the cell
        d2d = link_attrs(cfg.d2d_mbps, cfg.d2d_latency_ms, cfg.loss)  # as mec() makes them

    def make_network() -> NetworkModel:
        # A world whose clients hand over rewires a topology of its own.
        own = topology.copy() if moves else topology
        flows = FlowNetwork(own, transport=make_transport(cfg), dynamics=changes)
        model: NetworkModel = flows
        if moves:
            assert mobility is not None
            model = MovingNetwork(flows, mobility, d2d)
        return model if identity else _Renamed(model, names)

    classes: list[str | None] = [topology.device_class(n) for n in nodes]
    return NetworkSetup(make_network, make_neighbours, classes, topology, changes, mobility)


def _mobility(
    cfg: NetworkConfig, topology: Topology, seed: int, nodes: list[str]
) -> Mobility | None:
    """The run's clients in motion, where the scenario moves them; every problem of the layout or
    of a position trace as a ScenarioError naming the key."""
    if not cfg.mobility.moves and not cfg.radio.enabled:
        return None
    # Clients attach to the base station they hear best: by the radio model's path loss
    # where it is on.
    loss = partial(PATH_LOSS[cfg.radio.path_loss], frequency_ghz=cfg.radio.frequency_ghz)
    try:
        return Mobility(cfg.mobility, topology, seed, nodes, loss if cfg.radio.enabled else macro)
    except LayoutError as err:
        raise ScenarioError(f"network.mobility: {err}", Severity.CONFLICT) from None
    except PositionTraceError as err:
        severity = _severity(err.unreadable, not err.unreadable)
        raise ScenarioError(f"network.mobility.trace: {err}", severity) from None


def _severity(unreadable: bool, defect: bool) -> Severity:
    """A file that cannot be read comes first; a defect inside one is a wrong value; the rest
    (a target the topology lacks) a conflict with the topology."""
    if unreadable:
        return Severity.UNREADABLE
    return Severity.VALUE if defect else Severity.CONFLICT


def describe(cfg: NetworkConfig, setup: NetworkSetup) -> str:
    """The network in one line (`validate` prints it): topology and transport, then what
    moves and changes, e.g. "mec network over tcp; random waypoint 1.4 m/s, handover 3 dB /
    256 ms (cut 50 ms) among 2 cells; uplink trace lte-walk.csv"."""
    if cfg.topology == "ideal":
        return "ideal network"
    parts = [f"{cfg.topology} network over {cfg.transport}"]
    up, down = cfg.access_mbps
    if up != down:
        parts.append(f"access {up:g} Mbit/s up, {down:g} down")
    if setup.mobility is not None:  # (clients move, or the radio model places them)
        parts.append(setup.mobility.describe())
    if setup.link_changes is not None and setup.link_changes.radio is not None:
        parts.append(setup.link_changes.radio.describe())
    parts += describe_dynamics(cfg.dynamics)
    return "; ".join(parts)


def describe_dynamics(cfg: DynamicsConfig) -> list[str]:
    out = []
    for _, name, target in cfg.targets():
        prefix = f"{name} " if name else ""
        files = target.traces()
        if files and files.get("up") == files.get("down"):
            out.append(f"{prefix}trace {Path(files['up']).name}")
        else:
            out += [f"{prefix}{d}link trace {Path(f).name}" for d, f in files.items()]
        if target.fading is not None:
            f = target.fading
            out.append(
                f"{prefix}fading sigma {f.sigma:g} ({f.correlation_s:g} s, steps of {f.step_s:g} s)"
            )
        if target.gilbert_elliott is not None:
            g = target.gilbert_elliott
            out.append(
                f"{prefix}bursty loss {g.good_loss:.0%} / {g.bad_loss:.0%} "
                f"({g.good_s:g} s good, {g.bad_s:g} s bad)"
            )
    return out
