"""RollGate: the gate is passed around a ring of all clients, one pass per round."""

from __future__ import annotations

from nmoe_sim.federation.passing import ring_route
from nmoe_sim.gating.base import GateStage
from nmoe_sim.gating.passed import PassedGate


class RollGate(PassedGate):
    def route(self, stage: GateStage, steps: int) -> list[int]:
        return ring_route(stage.ctx.client_ids, steps // stage.num_clients)
