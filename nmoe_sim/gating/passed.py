"""Gates passed from client to client (RollGate, RanGate): one gate travels a route, each
holder fine-tunes it on its local data and sends it on. A scheme only says the route."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np

from nmoe_sim.federation.passing import pass_along
from nmoe_sim.gating.base import GateStage, LearnedGate
from nmoe_sim.learning import client as tasks
from nmoe_sim.learning.client import Update
from nmoe_sim.network.devices import client_node


class PassedGate(LearnedGate):
    def route(self, stage: GateStage, steps: int) -> list[int]:
        """The holders, in order: `steps` visits (rounds x clients)."""
        raise NotImplementedError

    def learn(self, stage: GateStage) -> Generator[Any, Any, None]:
        ctx, world, n_clients = stage.ctx, stage.world, stage.num_clients
        steps = ctx.scenario.stages.gate.rounds * n_clients
        route = self.route(stage, steps)
        losses: list[float] = []
        ctx.progress.stage(stage.method, "gate", ctx.scenario.stages.gate.rounds)

        def on_step(step: int, cid: int, update: Update) -> None:
            losses.append(update.loss)
            if (step + 1) % n_clients == 0:  # a round: as many visits as clients
                loss = float(np.mean(losses[-n_clients:]))
                stage.evaluate((step + 1) // n_clients, loss, update.weights)
                ctx.progress.round((step + 1) // n_clients, world.env.now)

        last, weights = yield from pass_along(
            world, stage="gate", route=route, plan=stage.plan, on_step=on_step
        )
        # The route is never empty: gate rounds >= 1 and every scheme visits >= 1 client a round.
        assert last is not None and weights is not None
        # Each visited client keeps the gate as it left it; clients the route never reached
        # get the final gate from its last holder.
        unvisited = [c for c in ctx.client_ids if c not in set(route)]
        sends = [
            world.channel.send(
                client_node(last),
                client_node(c),
                weights,
                kind="gate_pass",
                stage="gate",
                round=steps,
            )
            for c in unvisited
        ]
        yield world.env.all_of(sends)
        for c in unvisited:
            ctx.backend.submit(c, tasks.adopt_gate, stage.method, weights).result()
