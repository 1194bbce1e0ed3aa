"""Flower arm of benchmarks/vs_flower.py: the same FedAvg on Flower's simulation engine.

    benchmarks/.flower-venv/bin/python benchmarks/vs_flower/flower_run.py \
        --scenario benchmarks/vs_flower/fedavg100.yaml --result /tmp/flower.json [--set K=V ...]

Runs in its own virtual environment (flwr[simulation] with its pinned Ray; vs_flower.py builds
it), importing nmoe_sim from the repo. `flwr.simulation.run_simulation` with the apps of
flower_app.py, one supernode per client (its `partition-id` is the nmoe_sim client id) and
`--cpus-per-client` CPUs per ClientApp actor (default 1: Ray runs one actor per core).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, for nmoe_sim

import flwr
from flower_app import OVERRIDES_ENV, SCENARIO_ENV, client_app, outcome, server_app
from flwr.simulation import run_simulation
from workload import write_result

from nmoe_sim.config import load_scenario


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--cpus-per-client", type=float, default=1.0)
    args = parser.parse_args()
    os.environ[SCENARIO_ENV] = str(args.scenario.resolve())
    os.environ[OVERRIDES_ENV] = "\n".join(args.overrides)

    start = time.perf_counter()
    clients = load_scenario(args.scenario, args.overrides).clients.count
    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=clients,
        backend_config={
            "client_resources": {"num_cpus": args.cpus_per_client, "num_gpus": 0.0},
            # A fresh local Ray cluster even if one started by `ray start` is running here.
            "init_args": {"address": "local"},
        },
    )
    accuracies = outcome.get("accuracy_per_round")
    if not accuracies:
        sys.exit("flower_app: the ServerApp finished without results (see the log above)")
    write_result(
        args.result,
        accuracy=accuracies[-1],
        accuracy_per_round=accuracies,
        inner_s=time.perf_counter() - start,
        flwr_version=flwr.__version__,
        client_torch_threads=outcome["client_threads"],
        server_torch_threads=torch.get_num_threads(),
    )


if __name__ == "__main__":
    main()
