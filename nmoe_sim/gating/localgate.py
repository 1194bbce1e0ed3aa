"""LocalGate: every client trains its own gate on its own data and never shares it.

The no-federation reference of stage 3 (as the `local` baseline is for the whole model): it
shows what federating the gate buys over the expert-output exchange every scheme pays for.
Clients need not wait for each other, so each runs its `rounds` sessions back to back.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np

from nmoe_sim.gating.base import GateStage, LearnedGate
from nmoe_sim.learning.client import Update


class LocalGate(LearnedGate):
    def learn(self, stage: GateStage) -> Generator[Any, Any, None]:
        ctx, world = stage.ctx, stage.world
        rounds = ctx.scenario.stages.gate.rounds
        ctx.progress.stage(stage.method, "gate (local only)")

        def sessions(cid: int) -> Generator[Any, Any, float]:
            update: Update | None = None
            for r in range(rounds):  # each session continues from the client's own gate
                flops, fn, args = stage.plan(cid, None, r)
                update = yield from world.client_work(cid, flops, fn, *args)
            assert update is not None  # the schema keeps stages.gate.rounds >= 1
            return update.loss

        procs = [world.env.process(sessions(c)) for c in ctx.client_ids]
        yield world.env.all_of(procs)
        stage.evaluate(rounds, float(np.mean([p.value for p in procs])))
