"""What every pipeline of a run shares: scenario, clients, backend, evaluator and records."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from nmoe_sim.config import Scenario
from nmoe_sim.learning.client import Update
from nmoe_sim.learning.evaluate import Evaluator, Scores
from nmoe_sim.models.spec import ModelSpec
from nmoe_sim.network.channel import NetworkModel
from nmoe_sim.network.devices import DeviceProfile
from nmoe_sim.network.neighbours import Neighbours
from nmoe_sim.runtime.backend import Backend
from nmoe_sim.seeds import derive_seed
from nmoe_sim.telemetry.progress import RunProgress
from nmoe_sim.telemetry.records import MethodLog, Recorder
from nmoe_sim.telemetry.summary import InferenceSummary
from nmoe_sim.world import World


def mean_loss(updates: Sequence[Update]) -> float | None:
    """Mean training loss of a round's updates; None for a round in which none arrived."""
    return float(np.mean([u.loss for u in updates])) if updates else None


@dataclass
class MethodResult:
    scores: Scores
    log: MethodLog
    routing_frequency: np.ndarray | None = None
    inference: InferenceSummary | None = None  # the serving stage's figures, where it ran


@dataclass
class RunContext:
    scenario: Scenario
    spec: ModelSpec
    client_ids: list[int]
    num_train: dict[int, int]
    train_x: torch.Tensor  # all clients' train data, for the centralized baseline
    train_y: torch.Tensor
    backend: Backend
    evaluator: Evaluator
    # A fresh network per world: link state (flows in progress) belongs to one clock.
    make_network: Callable[[], NetworkModel]
    # Which clients neighbour which (RanGate's random walk), built when first asked for.
    neighbours: Callable[[], Neighbours]
    devices: DeviceProfile
    recorder: Recorder
    progress: RunProgress
    device: str

    def world(self, log: MethodLog, start_s: float = 0.0) -> World:
        return World.create(
            start_s=start_s,
            network=self.make_network(),
            devices=self.devices,
            backend=self.backend,
            log=log,
            recorder=self.recorder,
            seed=self.scenario.seed,
        )

    def seed(self, *names: object) -> int:
        return derive_seed(self.scenario.seed, *names)
