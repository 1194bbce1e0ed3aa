"""Two runs of one scenario on two networks, method by method: round times, bytes, accuracy,
serving latency and handovers (e.g. mec.yaml against mec-mobile.yaml).

    .venv/bin/python benchmarks/compare_networks.py runs/mec runs/mec-mobile

Round time is each synchronous round's span (rounds.csv: the stage's rounds of every stage of
the method's lineage, its extractor pipeline's included), its mean and 95th percentile; bytes
and accuracy from summary.json; serving p50 / p99 from its `inference` entry; handovers from
summary.json (absent where nothing moves: shown as -).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table


def lineage(method: str) -> list[str]:
    """A gating branch's rows include its extractor pipeline's ("nmoe/fedsc")."""
    return [method, method.rsplit("/", 1)[0]] if method.count("/") == 2 else [method]


def figures(run: Path) -> dict[str, dict[str, float | None]]:
    summary = json.loads((run / "summary.json").read_text())
    rounds = pd.read_csv(run / "rounds.csv")
    rounds["span"] = rounds.t_end_s - rounds.t_start_s
    out: dict[str, dict[str, float | None]] = {}
    for method, m in summary["methods"].items():
        spans = rounds[rounds.method.isin(lineage(method))].span.to_numpy()
        served = m.get("inference")
        out[method] = {
            "round_mean_s": float(spans.mean()) if len(spans) else None,
            "round_p95_s": float(np.percentile(spans, 95)) if len(spans) else None,
            "bytes_mb": m["bytes_total"] / 1e6,
            "accuracy": m["accuracy_global"],
            "sim_time_s": m["sim_time_s"],
            "p50_ms": served["latency_p50_ms"] if served else None,
            "p99_ms": served["latency_p99_ms"] if served else None,
            "handovers": m.get("handovers"),
        }
    return out


def shown(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("other", type=Path)
    args = parser.parse_args()
    for run in (args.base, args.other):
        if not (run / "summary.json").is_file():
            print(f"error: {run} is not a run directory (no summary.json)", file=sys.stderr)
            return 2
    a, b = figures(args.base), figures(args.other)
    table = Table(title=f"{args.base.name} | {args.other.name}")
    for col in (
        "method",
        "round mean s",
        "round p95 s",
        "sim time s",
        "bytes MB",
        "accuracy",
        "serve p50 ms",
        "serve p99 ms",
        "handovers",
    ):
        table.add_column(col, justify="right")
    for method in a:
        x, y = a[method], b.get(method)
        if y is None:
            continue
        table.add_row(
            method,
            f"{shown(x['round_mean_s'], '.2f')} | {shown(y['round_mean_s'], '.2f')}",
            f"{shown(x['round_p95_s'], '.2f')} | {shown(y['round_p95_s'], '.2f')}",
            f"{shown(x['sim_time_s'], '.1f')} | {shown(y['sim_time_s'], '.1f')}",
            f"{shown(x['bytes_mb'], '.1f')} | {shown(y['bytes_mb'], '.1f')}",
            f"{shown(x['accuracy'], '.2%')} | {shown(y['accuracy'], '.2%')}",
            f"{shown(x['p50_ms'], '.1f')} | {shown(y['p50_ms'], '.1f')}",
            f"{shown(x['p99_ms'], '.1f')} | {shown(y['p99_ms'], '.1f')}",
            f"{shown(x['handovers'], 'd')} | {shown(y['handovers'], 'd')}",
        )
    Console(width=200).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
