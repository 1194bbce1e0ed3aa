"""Flower's ServerApp and ClientApp for benchmarks/vs_flower.py (run by flower_run.py).

Message API of Flower 1.41: the ServerApp's main runs `flwr.serverapp.strategy.FedAvg.start`,
sampling `clients_per_round` supernodes per round, with no federated evaluation and the global
model scored on the whole test set by the strategy's `evaluate_fn` (centralized evaluation) after
the rounds nmoe-sim's FedAvg scores. The ClientApp's `@train` handler trains nmoe_sim's
classifier with nmoe_sim's `fit_classifier` on client `partition-id`'s data and seed. Each Ray
worker loads the population once (the usual Flower pattern of caching a partitioned dataset per
process). A module of its own so that Ray's workers import these apps by name.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, for nmoe_sim

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from workload import Workload, load_test_only, load_workload

from nmoe_sim.learning.client import ClientState, fit_classifier

# The scenario reaches the ClientApp's Ray workers through their environment (Flower copies the
# driver's environment into its workers): file path and `--set` overrides, one per line.
SCENARIO_ENV = "VS_FLOWER_SCENARIO"
OVERRIDES_ENV = "VS_FLOWER_OVERRIDES"

_population: Workload | None = None  # per worker process


def _scenario_args() -> tuple[Path, list[str]]:
    overrides = os.environ.get(OVERRIDES_ENV, "")
    return Path(os.environ[SCENARIO_ENV]), [o for o in overrides.split("\n") if o]


def _local_population() -> Workload:
    global _population
    if _population is None:
        _population = load_workload(*_scenario_args())
    return _population


client_app = ClientApp()


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    w = _local_population()
    cid = int(context.node_config["partition-id"])
    round_index = int(msg.content["config"]["server-round"]) - 1
    weights = msg.content["arrays"].to_torch_state_dict()
    state = ClientState(cid, w.spec, w.client_x[cid], w.client_y[cid])
    update = fit_classifier(
        state, weights, w.optim, w.local_epochs, w.client_seed(round_index, cid)
    )
    metrics = MetricRecord(
        {
            "num-examples": update.num_samples,
            "train-loss": update.loss,
            "torch-threads": torch.get_num_threads(),
        }
    )
    return Message(
        content=RecordDict({"arrays": ArrayRecord(update.weights), "metrics": metrics}),
        reply_to=msg,
    )


server_app = ServerApp()
outcome: dict[str, object] = {}


@server_app.main()
def server_main(grid: Grid, context: Context) -> None:
    w = load_test_only(*_scenario_args())
    accuracies: list[float] = []

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        # nmoe-sim scores only the rounds' results (not the initial model), every
        # federation.evaluate_every rounds and after the last.
        if server_round == 0 or not w.scored(server_round):
            return None
        accuracies.append(w.accuracy(arrays.to_torch_state_dict()))
        return MetricRecord({"accuracy": accuracies[-1]})

    strategy = FedAvg(
        fraction_train=w.per_round / w.clients,
        fraction_evaluate=0.0,
        min_train_nodes=w.per_round,
        min_available_nodes=w.clients,
    )
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(w.initial_weights()),
        num_rounds=w.rounds,
        evaluate_fn=evaluate,
    )
    outcome["accuracy_per_round"] = accuracies
    outcome["client_threads"] = sorted(
        {round(m["torch-threads"]) for m in result.train_metrics_clientapp.values()}
    )
