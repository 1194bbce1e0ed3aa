"""Random waypoint (as ns-3's RandomWaypointMobilityModel): pause, then walk in a straight line at
`speed_mps` to a point drawn uniformly in the area, pause again, and so on."""

from __future__ import annotations

import math

import numpy as np

from nmoe_sim.network.mobility.layout import Layout
from nmoe_sim.network.mobility.schema import MobilityConfig
from nmoe_sim.network.mobility.track import Track


def track(
    client: str, cfg: MobilityConfig, layout: Layout, rng: np.random.Generator, _: object = None
) -> Track:
    x0, y0, x1, y1 = layout.area
    speed, pause = cfg.speed_mps, cfg.pause_s

    def extend(tr: Track) -> None:
        t, x, y = tr.times[-1], tr.xs[-1], tr.ys[-1]
        if pause > 0:
            t += pause
            tr.add(t, x, y)
        nx = x0 + (x1 - x0) * float(rng.random())
        ny = y0 + (y1 - y0) * float(rng.random())
        t += max(math.hypot(nx - x, ny - y) / speed, 1e-9)
        tr.add(t, nx, ny)

    x, y = layout.clients[client]
    return Track(0.0, x, y, extend)
