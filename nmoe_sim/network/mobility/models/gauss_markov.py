"""Gauss-Markov mobility (Camp, Boleng and Davies, 2002; ns-3's GaussMarkovMobilityModel): every
`time_step_s` the speed and direction are updated as

    s_n = a s_{n-1} + (1 - a) s_mean + sqrt(1 - a^2) N(0, (s_mean / 3)^2)
    d_n = a d_{n-1} + (1 - a) d_mean + sqrt(1 - a^2) N(0, (pi / 4)^2)

(a = `alpha`, s_mean = `speed_mps`, d_mean drawn once per client), and the client moves in a
straight line at (s_n, d_n) for the step. At the area's edge it turns back: the direction, and
its mean, are mirrored on the wall it would cross. Speeds are kept at 0 or more."""

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
    a, step, mean_speed = cfg.alpha, cfg.time_step_s, cfg.speed_mps
    keep = math.sqrt(1.0 - a * a)
    state = {
        "speed": mean_speed,
        "dir": 2 * math.pi * float(rng.random()),
    }
    state["mean_dir"] = state["dir"]

    def extend(tr: Track) -> None:
        t, x, y = tr.times[-1], tr.xs[-1], tr.ys[-1]
        for _ in range(64):
            ds, dd = rng.standard_normal(2).tolist()
            speed = a * state["speed"] + (1 - a) * mean_speed + keep * mean_speed / 3 * ds
            speed = max(speed, 0.0)
            d = a * state["dir"] + (1 - a) * state["mean_dir"] + keep * math.pi / 4 * dd
            nx, ny = x + speed * step * math.cos(d), y + speed * step * math.sin(d)
            if not x0 <= nx <= x1:  # mirror on a vertical wall
                d, state["mean_dir"] = math.pi - d, math.pi - state["mean_dir"]
                nx = min(max(x + speed * step * math.cos(d), x0), x1)
            if not y0 <= ny <= y1:  # mirror on a horizontal wall
                d, state["mean_dir"] = -d, -state["mean_dir"]
                ny = min(max(y + speed * step * math.sin(d), y0), y1)
            state["speed"], state["dir"] = speed, d
            t, x, y = t + step, nx, ny
            tr.add(t, x, y)

    x, y = layout.clients[client]
    return Track(0.0, x, y, extend)
