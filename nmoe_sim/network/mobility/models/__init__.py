"""Mobility models by name: each module's `track(...)` gives a client's `Track` from its start.

A new model is one module here (a `track` function with the signature of `static.track`) and one
line in `MODELS`.
"""

from __future__ import annotations

from nmoe_sim.registry import Registry

MODELS = Registry(
    "mobility model",
    {
        "static": "nmoe_sim.network.mobility.models.static:track",
        "random_waypoint": "nmoe_sim.network.mobility.models.random_waypoint:track",
        "gauss_markov": "nmoe_sim.network.mobility.models.gauss_markov:track",
        "trace": "nmoe_sim.network.mobility.models.trace:track",
    },
)
