"""NMoE's stage 3 at growing client counts: the feature exchange on the flow network, timed.

    .venv/bin/python benchmarks/exchange.py                       # 100, 200, 400 clients
    .venv/bin/python benchmarks/exchange.py --clients 100,1000    # any sizes
    .venv/bin/python benchmarks/exchange.py --remote-experts 4

Each size is one `nmoe-sim run scenarios/smoke.yaml` subprocess: nmoe/fedce/fedgate over
Fashion-MNIST with 60 training samples per client, mec cells of 100 clients (at least 2), TCP,
`stages.gate.remote_experts` = m (8 by default), one gate round, inference and figures off. In the
exchange each client sends its features to its m remote experts and gets their outputs back:
2*n*m transfers that start together and share access links and backhauls, so the flow network
keeps one connected set of thousands of flows whose max-min shares it re-solves at every instant
a transfer starts or ends, and each expert's client computes its answers in between.

The table gives, per size, the phases read from the run's progress lines (stages 1-2, the
exchange, the gate round with its scoring), the whole wall time and the peak RSS of the run
(`ru_maxrss` of that child). Time the benchmark on an otherwise idle machine: on 2 cores torch
slows many times over when anything else runs.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
NMOE_SIM = Path(sys.executable).with_name("nmoe-sim")
STAMP = re.compile(r"^\[\s*([0-9.]+) s\] (.*)$")


def run_size(clients: int, remote: int, out: Path) -> dict[str, float]:
    cells = max(2, clients // 100)
    cmd = [
        str(NMOE_SIM),
        "run",
        str(ROOT / "scenarios" / "smoke.yaml"),
        "--out",
        str(out),
        "--set",
        f"clients.count={clients}",
        "--set",
        f"dataset.train_samples={60 * clients}",
        "--set",
        "methods=[nmoe/fedce/fedgate]",
        "--set",
        f"stages.gate.remote_experts={remote}",
        "--set",
        "stages.gate.rounds=1",
        "--set",
        "inference.enabled=false",
        "--set",
        f"network.cells={cells}",
        "--set",
        "output.plots=false",
    ]
    log = out.with_suffix(".log")
    start = time.perf_counter()
    with log.open("w") as sink:
        child = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS
    wall = time.perf_counter() - start
    text = log.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{clients} clients: nmoe-sim failed:\n{text[-2000:]}")
    stamps: dict[str, float] = {}
    for line in text.splitlines():
        m = STAMP.match(line.strip())
        if m:
            stamps.setdefault(m.group(2), float(m.group(1)))

    def at(phrase: str) -> float:
        found = [t for line, t in stamps.items() if phrase in line]
        if not found:
            sys.exit(f"{clients} clients: no progress line with {phrase!r} in {log}")
        return found[0]

    exchange = at("exchanging expert outputs")
    gate = at("gate (1 rounds)")
    return {
        "clients": clients,
        "cells": cells,
        "stages 1-2 s": exchange,
        "exchange s": gate - exchange,
        "gate round s": at("gate round 1/1") - gate,
        "wall s": wall,
        "peak RSS GB": usage.ru_maxrss / 1e6,
    }


def sizes_list(text: str) -> list[int]:
    """`--clients`: comma-separated client counts (argparse reports a bad one and exits 2)."""
    try:
        sizes = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 100,200,400, got {text!r}") from None
    if min(sizes) < 2:
        raise argparse.ArgumentTypeError(f"every size needs at least 2 clients, got {text!r}")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--clients", type=sizes_list, default="100,200,400", help="comma-separated sizes, >= 2"
    )
    parser.add_argument("--remote-experts", type=int, default=8)
    args = parser.parse_args()
    sizes = args.clients
    table = Table(title=f"NMoE exchange, remote_experts = {args.remote_experts}")
    rows = []
    with tempfile.TemporaryDirectory() as temp:
        for n in sizes:
            rows.append(run_size(n, args.remote_experts, Path(temp) / f"n{n}"))
            print(f"{n} clients: exchange {rows[-1]['exchange s']:.1f} s", file=sys.stderr)
    for key in rows[0]:
        table.add_column(key, justify="right")
    for row in rows:
        table.add_row(*(f"{v:,}" if isinstance(v, int) else f"{v:.2f}" for v in row.values()))
    Console().print(table)


if __name__ == "__main__":
    main()
