"""FedGate: the gate federated in parallel, partially synchronised. The trunk is averaged by the
federation driver of the scenario (sync rounds, FedAsync or FedBuff); each client's output
layer, one score row per expert, stays personal."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from nmoe_sim.gating.base import GateStage, LearnedGate
from nmoe_sim.learning import client as tasks
from nmoe_sim.learning.client import Weights
from nmoe_sim.pipelines.context import mean_loss
from nmoe_sim.pipelines.federate import federate


class FedGate(LearnedGate):
    def shared(self, gate: Weights) -> Weights:
        """The part of a gate the clients federate."""
        return tasks.trunk_only(gate)

    def learn(self, stage: GateStage) -> Generator[Any, Any, None]:
        ctx = stage.ctx
        # A client not selected yet has no output layer of its own: it uses the initial one
        # under the current trunk (with partial participation some never train).
        initial = tasks.fresh_weights(ctx.spec.build_gate(), ctx.seed(stage.method, "init"))
        final = yield from federate(
            ctx,
            stage.world,
            stage="gate",
            rounds=ctx.scenario.stages.gate.rounds,
            initial=self.shared(initial),
            share=self.shared,
            plan=stage.plan,
            on_round=lambda r, w, ups: stage.evaluate(r + 1, mean_loss(ups), initial, w),
        )
        for cid in ctx.client_ids:  # the federated part under each client's own remainder
            ctx.backend.submit(cid, tasks.adopt_gate, stage.method, final, initial).result()
