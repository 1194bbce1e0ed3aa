"""RanGate: the gate is passed along a seeded random walk over the topology's neighbours."""

from __future__ import annotations

import numpy as np

from nmoe_sim.federation.passing import random_walk_route
from nmoe_sim.gating.base import GateStage
from nmoe_sim.gating.passed import PassedGate


class RanGate(PassedGate):
    def route(self, stage: GateStage, steps: int) -> list[int]:
        rng = np.random.default_rng(stage.ctx.seed(stage.method, "walk"))
        return random_walk_route(stage.ctx.neighbours(), steps, rng)
