"""What a client task costs on Ray beyond its own compute, and what batching would save.

    .venv/bin/python benchmarks/ray_dispatch.py                   # 20 rounds x 100 tasks, 10 ms
    .venv/bin/python benchmarks/ray_dispatch.py --task-ms 20 --rounds 5

The shape of a cross-device FedAvg round on the Ray backend, without the model: each round puts
the global weights in the object store once, then runs `--tasks` tasks on two actors (one CPU
each), each task reading the weights, computing for `--task-ms` (a busy loop, so every mode
computes the same) and returning weights of the same size, as the backend does: CPU tensors
travel as their bytes. Three ways to send a round's tasks:

- `task`: one actor call per task, the way `RayBackend` sends them today;
- `batch`: one call per actor per round, returning every result at once;
- `stream`: one call per actor per round, yielding each result as it is done (a Ray streaming
  generator): results done before an actor dies survive it, as the backend's fault replay needs.

The table gives each mode's wall time and its overhead per task per actor: (wall - compute) /
(tasks per actor), where compute is what the busy loops alone take on two actors. Modes run
interleaved, `--repeat` times each; time it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from collections.abc import Iterator
from typing import Any

import ray
import torch
from rich.console import Console
from rich.table import Table

from nmoe_sim.runtime.ray_backend import send_tensors_as_bytes

MODES = ("task", "batch", "stream")
ACTORS = 2


def _weights(params: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {f"layer{i}": torch.randn(params // 8, generator=gen) for i in range(8)}


def _compute(weights: dict[str, torch.Tensor], seconds: float) -> dict[str, torch.Tensor]:
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        pass
    return {k: v + 1.0 for k, v in weights.items()}


class Host:
    def __init__(self) -> None:
        torch.set_num_threads(1)
        send_tensors_as_bytes()

    def one(self, weights: dict[str, torch.Tensor], seconds: float) -> Any:
        return _compute(weights, seconds)

    def batch(self, weights: dict[str, torch.Tensor], seconds: float, n: int) -> list[Any]:
        return [_compute(weights, seconds) for _ in range(n)]

    def stream(self, weights: dict[str, torch.Tensor], seconds: float, n: int) -> Iterator[Any]:
        for _ in range(n):
            yield _compute(weights, seconds)


def run_mode(mode: str, hosts: list[Any], args: argparse.Namespace) -> float:
    seconds = args.task_ms / 1e3
    per_actor = args.tasks // ACTORS
    weights = _weights(args.params)
    start = time.perf_counter()
    for _ in range(args.rounds):
        ref = ray.put(weights)
        if mode == "task":
            refs = [hosts[i % ACTORS].one.remote(ref, seconds) for i in range(args.tasks)]
            results = [ray.get(r) for r in refs]
        elif mode == "batch":
            refs = [h.batch.remote(ref, seconds, per_actor) for h in hosts]
            results = [x for r in refs for x in ray.get(r)]
        else:
            streams = [
                h.stream.options(num_returns="streaming").remote(ref, seconds, per_actor)
                for h in hosts
            ]
            results = [ray.get(r) for s in streams for r in s]
        if len(results) != per_actor * ACTORS:
            raise SystemExit(f"{mode}: {len(results)} results, expected {per_actor * ACTORS}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=100, help="tasks per round (even)")
    parser.add_argument("--task-ms", type=float, default=10.0, help="compute of one task")
    parser.add_argument("--params", type=int, default=225_000, help="float32 weights per task")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if args.rounds < 1 or args.tasks < ACTORS or args.tasks % ACTORS or args.repeat < 1:
        parser.error("--rounds and --repeat must be >= 1, --tasks even and >= 2")

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        num_cpus=ACTORS, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False
    )
    try:
        send_tensors_as_bytes()
        host = ray.remote(num_cpus=1)(Host)
        hosts = [host.remote() for _ in range(ACTORS)]
        ray.get([h.one.remote(_weights(8), 0.0) for h in hosts])  # actors up and warm
        walls: dict[str, list[float]] = {m: [] for m in MODES}
        for _ in range(args.repeat):
            for mode in MODES:
                walls[mode].append(run_mode(mode, hosts, args))
    finally:
        ray.shutdown()

    per_actor = args.rounds * args.tasks // ACTORS
    compute = per_actor * args.task_ms / 1e3
    table = Table(
        title=f"Ray dispatch: {args.rounds} rounds x {args.tasks} tasks of {args.task_ms:g} ms "
        f"on {ACTORS} actors, {args.params * 4 / 1e6:.1f} MB of weights each way"
    )
    for col in ("mode", "wall s (median)", "runs", "compute s", "overhead ms / task / actor"):
        table.add_column(col, justify="right")
    for mode in MODES:
        wall = statistics.median(walls[mode])
        runs = ", ".join(f"{w:.2f}" for w in walls[mode])
        overhead_ms = (wall - compute) / per_actor * 1e3
        table.add_row(mode, f"{wall:.2f}", runs, f"{compute:.2f}", f"{overhead_ms:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
