"""Clock-only benchmark: a million transfers on the multi-cell MEC topology, no training.

    .venv/bin/python benchmarks/clock.py                          # 100 cells x 100 clients, 1e6
    .venv/bin/python benchmarks/clock.py --cells 10 --transfers 100000
    .venv/bin/python benchmarks/clock.py --transports tcp         # one transport only
    .venv/bin/python benchmarks/clock.py --profile                # cProfile's top functions too
    .venv/bin/python benchmarks/clock.py --dynamics               # static, then changing links

With `--dynamics` each transport also runs the same workload with every client's access link
(both ways) fading: a log-normal factor stepping every `--change-every-s` seconds (sigma 0.5,
correlation 5 s), as `network.dynamics.access.fading` makes it. The flow network applies a change
only to a link that carries flows (an idle link is read when next used), so the table counts the
changes that met flows.

Each transport (`fluid`, `tcp` with Linux's defaults and persistent connections) runs the same
workload in turn, in this process; the table gives each one's wall time and the ratio to the first.

Every client runs the federated loop with training replaced by its modelled duration: download
the model from the cloud, compute (a seeded lognormal time), upload the update, and every second
round hand a gate to its ring neighbour in the cell over the device-to-device link. Clients start
at seeded random offsets, so uploads and downloads of a cell overlap and share the backhaul
max-min fairly. Everything runs on one simpy.Environment through one FlowNetwork.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import simpy
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nmoe_sim.clock import run_clock  # noqa: E402
from nmoe_sim.native import is_compiled  # noqa: E402
from nmoe_sim.network import flows  # noqa: E402
from nmoe_sim.network.dynamics.links import build_link_changes  # noqa: E402
from nmoe_sim.network.dynamics.schema import (  # noqa: E402
    DynamicsConfig,
    FadingConfig,
    LinkChangesConfig,
)
from nmoe_sim.network.flows import FlowNetwork  # noqa: E402
from nmoe_sim.network.topology import Topology, mec  # noqa: E402
from nmoe_sim.network.transports import TRANSPORTS, by_name  # noqa: E402


def build(cells: int, per_cell: int, backhaul_mbps: float) -> Topology:
    return mec(
        cells,
        per_cell,
        access_mbps=20.0,
        access_latency_ms=5.0,
        backhaul_mbps=backhaul_mbps,
        backhaul_latency_ms=10.0,
        d2d_mbps=50.0,
        d2d_latency_ms=2.0,
    )


def client_loop(
    env: simpy.Environment,
    net: FlowNetwork,
    topo: Topology,
    me: str,
    ring_next: str,
    transfers: int,
    offset_s: float,
    compute_s: list[float],
    model_bytes: int,
    gate_bytes: int,
    kinds: dict[str, int],
) -> Generator:
    cloud = topo.cloud
    yield env.timeout(offset_s)
    done = 0
    r = 0
    while done < transfers:
        yield from net.carry(env, cloud, me, model_bytes)
        kinds["model_down"] += 1
        done += 1
        yield env.timeout(compute_s[r % len(compute_s)])  # training, by its modelled duration
        if done < transfers:
            yield from net.carry(env, me, cloud, model_bytes)
            kinds["update_up"] += 1
            done += 1
        if r % 2 == 1 and done < transfers and ring_next != me:
            yield from net.carry(env, me, ring_next, gate_bytes)  # over the d2d link
            kinds["gate_pass"] += 1
            done += 1
        r += 1


def run(args: argparse.Namespace, transport: str, dynamic: bool = False) -> dict[str, Any]:
    t0 = time.perf_counter()
    topo = build(args.cells, args.per_cell, args.backhaul_mbps)
    build_s = time.perf_counter() - t0

    rng = np.random.default_rng(args.seed)
    clients = topo.clients
    n = len(clients)
    per_client, extra = divmod(args.transfers, n)
    offsets = rng.uniform(0.0, args.spread_s, n)
    # Device speed spread: each client's compute time is lognormal around the mean.
    speed = rng.lognormal(0.0, 0.5, n)
    rounds = per_client // 2 + 1
    # Plain floats: numpy scalars would leak into env.now and slow every time computation.
    compute = (rng.lognormal(0.0, 0.25, (n, rounds)) * args.compute_s * speed[:, None]).tolist()

    env = simpy.Environment()
    changes = None
    if dynamic:
        fading = FadingConfig(sigma=0.5, correlation_s=5.0, step_s=args.change_every_s)
        config = DynamicsConfig(access=LinkChangesConfig(fading=fading))
        changes = build_link_changes(config, topo, args.seed)
    net = FlowNetwork(topo, transport=by_name(transport), dynamics=changes)
    kinds = {"model_down": 0, "update_up": 0, "gate_pass": 0}
    t1 = time.perf_counter()
    c1 = time.process_time()
    for i, me in enumerate(clients):
        cell, k = divmod(i, args.per_cell)
        ring_next = clients[cell * args.per_cell + (k + 1) % args.per_cell]
        env.process(
            client_loop(
                env,
                net,
                topo,
                me,
                ring_next,
                per_client + (1 if i < extra else 0),
                float(offsets[i]),
                compute[i],
                args.model_bytes,
                args.gate_bytes,
                kinds,
            )
        )
    run_clock(env)
    run_s = time.perf_counter() - t1
    cpu_s = time.process_time() - c1
    completed = net.transfers_completed
    if completed != args.transfers:
        raise SystemExit(f"expected {args.transfers} transfers, the network finished {completed}")
    return {
        "transport": transport + (" + fading" if dynamic else ""),
        "changes": net.link_changes_applied,
        "clients": n,
        "transfers": completed,
        "build_s": build_s,
        "run_s": run_s,
        "cpu_s": cpu_s,
        "sim_time_s": env.now,
        "peak_flows": net.peak_active_flows,
        "kinds": kinds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100)
    parser.add_argument("--per-cell", type=int, default=100)
    parser.add_argument("--transfers", type=int, default=1_000_000)
    parser.add_argument(
        "--backhaul-mbps", type=float, default=200.0, help="per cell; a crowded cell shares it"
    )
    parser.add_argument("--model-bytes", type=int, default=1_200_000, help="~300k float32 params")
    parser.add_argument("--gate-bytes", type=int, default=40_000)
    parser.add_argument("--compute-s", type=float, default=2.0, help="mean modelled training time")
    parser.add_argument("--spread-s", type=float, default=10.0, help="clients' start offsets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--transports",
        default="fluid,tcp",
        help=f"comma-separated, run in this order (known: {', '.join(TRANSPORTS)})",
    )
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--dynamics", action="store_true", help="each transport again with fading access links"
    )
    parser.add_argument(
        "--change-every-s", type=float, default=1.0, help="--dynamics: the fading's step"
    )
    args = parser.parse_args()
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    unknown = [t for t in transports if t not in TRANSPORTS]
    if unknown or not transports:
        parser.error(f"--transports: unknown {unknown}; choose from {', '.join(TRANSPORTS)}")

    rows = []
    for transport in transports:
        for dynamic in (False, True) if args.dynamics else (False,):
            if args.profile:
                prof = cProfile.Profile()
                stats = prof.runcall(run, args, transport, dynamic)
                pstats.Stats(prof).sort_stats("tottime").print_stats(20)
            else:
                stats = run(args, transport, dynamic)
            # Peak RSS is the process's so far: later rows include the earlier ones'.
            stats["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            stats["static_s"] = rows[-1]["run_s"] if dynamic else stats["run_s"]
            rows.append(stats)

    table = Table(title="FlowNetwork clock-only benchmark (mec, max-min sharing)")
    for col in (
        "transport",
        "clients",
        "transfers",
        "build s",
        "wall time s",
        "CPU time s",
        "transfers/s",
        f"wall / {rows[0]['transport']}",
        "wall / static",
        "link changes met",
        "simulated time s",
        "peak concurrent flows",
        "peak RSS MiB",
    ):
        table.add_column(col, justify="right")
    for stats in rows:
        table.add_row(
            stats["transport"],
            f"{stats['clients']:,}",
            f"{stats['transfers']:,}",
            f"{stats['build_s']:.2f}",
            f"{stats['run_s']:.2f}",
            f"{stats['cpu_s']:.2f}",
            f"{stats['transfers'] / stats['run_s']:,.0f}",
            f"{stats['run_s'] / rows[0]['run_s']:.2f}",
            f"{stats['run_s'] / stats['static_s']:.2f}",
            f"{stats['changes']:,}",
            f"{stats['sim_time_s']:,.1f}",
            f"{stats['peak_flows']:,}",
            f"{stats['peak_rss_mib']:,.0f}",
        )
    Console(width=180).print(table)
    k = rows[0]["kinds"]
    print(
        f"mec {args.cells} cells x {args.per_cell} clients: access 20 Mbps / 5 ms, backhaul "
        f"{args.backhaul_mbps:g} Mbps / 10 ms per cell, d2d 50 Mbps / 2 ms; messages "
        f"{args.model_bytes:,} B (model) and {args.gate_bytes:,} B (gate); "
        f"{k['model_down']:,} downloads, {k['update_up']:,} uploads, {k['gate_pass']:,} gate passes"
    )
    print(
        "wall / CPU time cover the simulation run (routes are computed in it, on first use); "
        "build s is the topology alone; CPU time is this process's, which tells contention on a "
        "shared machine apart"
    )
    core = "compiled (mypyc, build/native)" if is_compiled(flows) else "pure Python"
    print(f"network core: {core}; NMOE_SIM_PURE_PYTHON=1 runs the pure-Python one")


if __name__ == "__main__":
    main()
