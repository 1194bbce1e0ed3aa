"""Where base stations and clients are on the plane (metres), and the area clients move in.

Base stations are the nodes that serve clients directly and every node of role `edge` (a `mec`
topology's `bs*`, a `star`'s hub). A topology file may give every node `x_m` and `y_m`; generated
topologies (and files without positions) get a default layout: base stations on a square grid
`inter_site_distance_m` apart, in the order of the graph, and each client uniformly within half
that distance of the base station it is linked to (seeded per client), so it starts in its own
cell. The area is the box around the base stations reaching half the distance beyond them
(stretched to hold every client a file places further out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nmoe_sim.network.topology import Topology
from nmoe_sim.seeds import numpy_rng


class LayoutError(ValueError):
    """A layout that cannot be used; the message names what is missing or wrong."""


@dataclass(frozen=True)
class Layout:
    stations: dict[str, tuple[float, float]]  # base station -> (x, y) in metres
    clients: dict[str, tuple[float, float]]  # client -> its position at time 0
    home: dict[str, str]  # client -> the base station the topology links it to
    area: tuple[float, float, float, float]  # x_min, y_min, x_max, y_max

    def inside(self, x: float, y: float) -> bool:
        x0, y0, x1, y1 = self.area
        return x0 <= x <= x1 and y0 <= y <= y1


def serving_stations(topology: Topology) -> dict[str, str]:
    """client -> the one non-client node it links to (its base station); LayoutError for a
    client with none or several (a layout needs each client in one cell)."""
    g = topology.graph
    home: dict[str, str] = {}
    for client in topology.clients:
        hubs = [v for v in g.succ[client] if g.nodes[v]["role"] != "client"]
        if len(hubs) != 1:
            raise LayoutError(
                f"client {client!r} links to {len(hubs)} base stations "
                f"({', '.join(sorted(hubs)) or 'none'}); mobility needs each client in one cell"
            )
        home[client] = hubs[0]
    return home


def build_layout(topology: Topology, inter_site_distance_m: float, seed: int) -> Layout:
    home = serving_stations(topology)
    g = topology.graph
    # Every edge node can serve a client that walks into its cell, clients at time 0 or not.
    serving = set(home.values()) | {n for n, r in g.nodes.data("role") if r == "edge"}
    stations = [n for n in g if n in serving]
    given = [n for n in (*stations, *home) if "x_m" in g.nodes[n]]
    if given:
        missing = [n for n in (*stations, *home) if "x_m" not in g.nodes[n]]
        if missing:
            raise LayoutError(
                f"the topology gives positions (x_m, y_m) to some nodes but not to "
                f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}; give every base "
                "station and client one, or none (then a grid layout is made)"
            )
        at = {n: (float(g.nodes[n]["x_m"]), float(g.nodes[n]["y_m"])) for n in given}
        bs = {s: at[s] for s in stations}
        clients = {c: at[c] for c in home}
    else:
        cols = math.ceil(math.sqrt(len(stations)))
        d = inter_site_distance_m
        bs = {s: ((i % cols) * d, (i // cols) * d) for i, s in enumerate(stations)}
        clients = {}
        for c, s in home.items():
            rng = numpy_rng(seed, "layout", c)
            r = d / 2 * math.sqrt(float(rng.random()))
            angle = 2 * math.pi * float(rng.random())
            x, y = bs[s]
            clients[c] = (x + r * math.cos(angle), y + r * math.sin(angle))
    margin = inter_site_distance_m / 2
    bx = [p[0] for p in bs.values()]
    by = [p[1] for p in bs.values()]
    cx = [p[0] for p in clients.values()]
    cy = [p[1] for p in clients.values()]
    area = (
        min(min(bx) - margin, *cx),
        min(min(by) - margin, *cy),
        max(max(bx) + margin, *cx),
        max(max(by) + margin, *cy),
    )
    return Layout(bs, clients, home, area)
