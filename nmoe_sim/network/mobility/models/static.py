"""A client that stays where the layout put it."""

from __future__ import annotations

import numpy as np

from nmoe_sim.network.mobility.layout import Layout
from nmoe_sim.network.mobility.schema import MobilityConfig
from nmoe_sim.network.mobility.track import Track


def track(
    client: str, cfg: MobilityConfig, layout: Layout, rng: np.random.Generator, _: object = None
) -> Track:
    x, y = layout.clients[client]
    return Track(0.0, x, y)
