"""Floor arm of benchmarks/vs_flower.py: FedAvg as a bare single-process PyTorch loop.

    .venv/bin/python benchmarks/vs_flower/floor.py --scenario benchmarks/vs_flower/fedavg100.yaml \
        --result /tmp/floor.json [--set KEY=VALUE ...]

The plainest fast way to do what nmoe-sim's FedAvg baseline does, with nothing simulated: per
round draw the clients (nmoe-sim's own selection stream), train each in turn with
`nmoe_sim.learning.loops.fit` (same loss, optimizer, batches and seeds), take the sample-weighted
mean of their state dicts (nmoe-sim's own `weighted_average`) and score the new global model on the
whole test set (every `federation.evaluate_every` rounds and after the last, as nmoe-sim does).
One model object is reused; torch uses every core.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, for nmoe_sim

from workload import load_workload, write_result

from nmoe_sim.federation.aggregate import weighted_average
from nmoe_sim.learning.loops import fit


def cross_entropy(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(model(x), y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--threads", type=int, default=None, help="torch threads; default all")
    args = parser.parse_args()

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    start = time.perf_counter()
    w = load_workload(args.scenario, args.overrides)
    cpu = torch.device("cpu")
    rng = w.selection_rng()
    model = w.spec.build_classifier()
    global_weights = w.initial_weights()
    accuracies: list[float] = []
    for r in range(w.rounds):
        if w.per_round == w.clients:
            selected = list(range(w.clients))
        else:
            selected = sorted(rng.choice(w.clients, size=w.per_round, replace=False).tolist())
        states, samples = [], []
        for cid in selected:
            model.load_state_dict(global_weights)
            gen = torch.Generator().manual_seed(w.client_seed(r, cid))
            data = (w.client_x[cid], w.client_y[cid])
            fit(model, data, cross_entropy, w.optim, w.local_epochs, gen, cpu)
            states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
            samples.append(len(w.client_y[cid]))
        global_weights = weighted_average(states, samples)
        if w.scored(r + 1):
            accuracies.append(w.accuracy(global_weights))
            print(f"round {r + 1}/{w.rounds}: accuracy {accuracies[-1]:.4f}", flush=True)
    write_result(
        args.result,
        accuracy=accuracies[-1],
        accuracy_per_round=accuracies,
        inner_s=time.perf_counter() - start,
        torch_threads=torch.get_num_threads(),
    )


if __name__ == "__main__":
    main()
