"""Accuracy / bytes table of every method, IID vs Dirichlet 0.5, on real Fashion-MNIST.

    .venv/bin/python benchmarks/accuracy.py                 # budget x2 of mec.yaml (~30 min here)
    .venv/bin/python benchmarks/accuracy.py --budget 1      # mec.yaml's own budget
    .venv/bin/python benchmarks/accuracy.py --out runs/bench-accuracy

Runs scenarios/mec.yaml once per partition with every round / epoch count multiplied by
`--budget`, keeps each run directory, and prints one table plus the issue's two aims:
nmoe/fedsc/fedgate within 1 point of centralized at IID, and losing at most 2 points from IID to
Dirichlet 0.5.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nmoe_sim.config import load_scenario  # noqa: E402
from nmoe_sim.engine import run_scenario  # noqa: E402

PARTITIONS = {
    "iid": ["partition.scheme=iid"],
    "dir0.5": ["partition.scheme=dirichlet", "partition.alpha=0.5"],
}
# Budget keys scaled by --budget (epochs of the cheap expert/gate stages included).
SCALED = (
    "stages.extractor.rounds",
    "stages.gate.rounds",
    "baselines.local.epochs",
    "baselines.fedavg.rounds",
    "baselines.centralized.epochs",
)


def budget_overrides(scenario_path: Path, factor: float) -> list[str]:
    base = load_scenario(scenario_path).model_dump()
    out = []
    for key in SCALED:
        value = base
        for part in key.split("."):
            value = value[part]
        out.append(f"{key}={max(1, round(value * factor))}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "mec.yaml")
    parser.add_argument("--budget", type=float, default=2.0, help="multiplier of rounds/epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="folder for the run directories")
    args = parser.parse_args()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = args.out or ROOT / "runs" / f"bench-accuracy-{stamp}"
    console = Console(stderr=True)
    summaries = {}
    for label, partition in PARTITIONS.items():
        overrides = budget_overrides(args.scenario, args.budget) + partition
        scenario = load_scenario(args.scenario, overrides, args.seed)
        console.print(f"[bold]{label}[/]: {' '.join(overrides)}")
        summaries[label] = run_scenario(scenario, out / label, console)

    table = Table(title=f"Fashion-MNIST, {args.scenario.name}, budget x{args.budget:g}")
    table.add_column("method", no_wrap=True)
    for label in PARTITIONS:
        for col in ("acc global", "acc local", "MB"):
            table.add_column(f"{label} {col}", justify="right")
    for method in summaries["iid"]["methods"]:
        row = [method]
        for label in PARTITIONS:
            m = summaries[label]["methods"][method]
            row += [
                f"{100 * m['accuracy_global']:.2f}",
                f"{100 * m['accuracy_local']:.2f}",
                f"{m['bytes_total'] / 1e6:.1f}",
            ]
        table.add_row(*row)
    Console(width=140).print(table)  # full method names even when piped

    def acc(label: str, method: str) -> float:
        return 100 * summaries[label]["methods"][method]["accuracy_global"]

    key = "nmoe/fedsc/fedgate"
    if key in summaries["iid"]["methods"] and "centralized" in summaries["iid"]["methods"]:
        gap = acc("iid", "centralized") - acc("iid", key)
        drop = acc("iid", key) - acc("dir0.5", key)
        print(f"{key}: {gap:+.2f} points below centralized at IID (aim <= 1.00)")
        print(f"{key}: {drop:+.2f} points lost from IID to Dirichlet 0.5 (aim <= 2.00)")
    print(f"run directories: {out}")


if __name__ == "__main__":
    main()
