"""The workload every arm of benchmarks/vs_flower.py runs, built from nmoe_sim's own parts.

Imported by the floor arm (the repo's venv) and by the Flower arm (its own venv, with the repo
root on PYTHONPATH), so both train the same model on the same partition with the same seeds as
nmoe-sim's FedAvg baseline (`nmoe_sim/pipelines/baselines.py::run_fedavg`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nmoe_sim.config import OptimConfig, Scenario, load_scenario
from nmoe_sim.engine import build_population, load_scenario_dataset, model_spec
from nmoe_sim.learning.client import fresh_weights
from nmoe_sim.learning.loops import predict
from nmoe_sim.models.spec import ModelSpec
from nmoe_sim.seeds import derive_seed, numpy_rng

Weights = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Workload:
    """Everything an arm needs: per-client train tensors, the test set and the schedule."""

    scenario: Scenario
    spec: ModelSpec
    client_x: list[torch.Tensor]
    client_y: list[torch.Tensor]
    test_x: torch.Tensor
    test_y: torch.Tensor

    @property
    def clients(self) -> int:
        return self.scenario.clients.count

    @property
    def per_round(self) -> int:
        return self.scenario.federation.clients_per_round or self.clients

    @property
    def rounds(self) -> int:
        return self.scenario.baselines.fedavg.rounds

    @property
    def local_epochs(self) -> int:
        return self.scenario.baselines.fedavg.local_epochs

    def scored(self, round_number: int) -> bool:
        """Whether the global model is scored after round `round_number` (from 1), as nmoe-sim
        does it: every `federation.evaluate_every` rounds and after the last."""
        every = self.scenario.federation.evaluate_every
        return round_number % every == 0 or round_number == self.rounds

    @property
    def optim(self) -> OptimConfig:
        return self.scenario.baselines.fedavg.optim

    def initial_weights(self) -> Weights:
        """nmoe-sim's initial global model (same seed stream)."""
        seed = derive_seed(self.scenario.seed, "fedavg", "init")
        return fresh_weights(self.spec.build_classifier(), seed)

    def client_seed(self, round_index: int, client: int) -> int:
        """nmoe-sim's seed of client `client`'s local training in round `round_index` (from 0)."""
        return derive_seed(self.scenario.seed, "fedavg", "round", round_index, "client", client)

    def selection_rng(self) -> np.random.Generator:
        """nmoe-sim's client-selection stream of its FedAvg baseline (world "fedavg", stage
        "fedavg"), so the floor picks the very clients nmoe-sim picks."""
        return numpy_rng(self.scenario.seed, "federation", "fedavg", "fedavg")

    def accuracy(self, weights: Weights) -> float:
        """The global model on the whole test set, as nmoe-sim's Evaluator scores it."""
        model = self.spec.build_classifier()
        model.load_state_dict(weights)
        predicted = predict(model, self.test_x, torch.device("cpu")).argmax(1)
        return float((predicted == self.test_y).float().mean())


def load_workload(scenario_path: Path, overrides: list[str]) -> Workload:
    scenario = load_scenario(scenario_path, overrides)
    population = build_population(scenario)
    dataset = population.dataset
    spec = model_spec(scenario, dataset)
    return Workload(
        scenario=scenario,
        spec=spec,
        client_x=[dataset.train_x[p] for p in population.train_parts],
        client_y=[dataset.train_y[p] for p in population.train_parts],
        test_x=dataset.test_x,
        test_y=dataset.test_y,
    )


def load_test_only(scenario_path: Path, overrides: list[str]) -> Workload:
    """The test set and model spec only (a server that evaluates but never trains)."""
    scenario = load_scenario(scenario_path, overrides)
    dataset = load_scenario_dataset(scenario)
    return Workload(
        scenario=scenario,
        spec=model_spec(scenario, dataset),
        client_x=[],
        client_y=[],
        test_x=dataset.test_x,
        test_y=dataset.test_y,
    )


def write_result(path: Path, **fields: Any) -> None:
    path.write_text(json.dumps(fields, indent=2) + "\n")
