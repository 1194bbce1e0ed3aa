"""Peer-to-peer model passing: RollGate's ring and RanGate's random walk."""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

import numpy as np

from nmoe_sim.federation.aggregate import Weights
from nmoe_sim.federation.sync import LocalPlan
from nmoe_sim.learning.client import Update
from nmoe_sim.network.devices import client_node
from nmoe_sim.network.neighbours import Neighbours
from nmoe_sim.world import World


def ring_route(client_ids: Sequence[int], passes: int) -> list[int]:
    return list(client_ids) * passes


def random_walk_route(graph: Neighbours, steps: int, rng: np.random.Generator) -> list[int]:
    """A walk of `steps` visits; each next holder is drawn uniformly from the current one's
    neighbours."""
    nodes = graph.clients
    current = nodes[int(rng.integers(len(nodes)))]
    route = [current]
    while len(route) < steps:
        neighbours = graph.of(current)
        current = neighbours[int(rng.integers(len(neighbours)))]
        route.append(current)
    return route


def pass_along(
    world: World,
    *,
    stage: str,
    route: Sequence[int],
    plan: LocalPlan,
    on_step: Callable[[int, int, Update], None],
) -> Generator[Any, Any, tuple[int | None, Weights | None]]:
    """Hand a model along `route`: each holder runs `plan`'s task on it (the first holder gets
    None and starts a fresh model), then sends the result to the next.
    Returns (last holder, final weights); both None only for an empty route."""
    weights: Weights | None = None
    previous: int | None = None
    for step, cid in enumerate(route):
        if previous is not None and previous != cid:
            weights = yield world.channel.send(
                client_node(previous),
                client_node(cid),
                weights,
                kind="gate_pass",
                stage=stage,
                round=step,
            )
        flops, fn, args = plan(cid, weights, step)
        update: Update = yield from world.client_work(cid, flops, fn, *args)
        weights = update.weights
        previous = cid
        on_step(step, cid, update)
    return previous, weights
