"""Fidelity benchmark: the network clock's transfer times against measured TCP, fluid beside tcp.

    .venv/bin/python benchmarks/fidelity.py                     # the ns-3 reference shipped here
    .venv/bin/python benchmarks/fidelity.py --reference my.csv  # your own measurements
    .venv/bin/python benchmarks/fidelity.py --cases             # every case, not just the misses
    .venv/bin/python benchmarks/fidelity.py --json              # one line of JSON, fluid and tcp

Every case of the reference (equal flows started together over one link, each on a new
connection: see benchmarks/fidelity/README.md for the format) is replayed through the real
FlowNetwork with the reference's segment size, framing, initial window and buffers, and its
completion time (one flow: its own; several: the last to finish) compared with the measured one.
Errors are relative and signed: negative is too fast. Rows with loss > 0 use the loss model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nmoe_sim.network import fidelity  # noqa: E402

DEFAULT_REFERENCE = ROOT / "benchmarks" / "fidelity" / "ns3_reference.csv"
TRANSPORTS = fidelity.TRANSPORT_NAMES


def pct(x: float) -> str:
    return f"{100 * x:+.1f} %"


def group_table(
    title: str,
    key: Callable[[fidelity.Case], object],
    scored: dict[str, list[fidelity.Scored]],
    label: Callable[[object], str] = str,
) -> Table:
    table = Table(title=title)
    table.add_column(title.split(" by ")[-1], justify="right")
    table.add_column("cases", justify="right")
    for t in TRANSPORTS:
        table.add_column(f"{t} within 5 %", justify="right")
        table.add_column(f"{t} median |err|", justify="right")
        table.add_column(f"{t} worst", justify="right")
    groups: dict[object, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for t in TRANSPORTS:
        for s in scored[t]:
            groups[key(s.case)][t].append(s.error)
    for value in sorted(groups, key=lambda v: (isinstance(v, str), v)):  # type: ignore[arg-type, return-value]
        row = [label(value), str(len(groups[value][TRANSPORTS[0]]))]
        for t in TRANSPORTS:
            errors = groups[value][t]
            within = sum(abs(e) <= 0.05 for e in errors) / len(errors)
            worst = max(errors, key=abs)
            row += [
                f"{100 * within:.0f} %",
                f"{100 * statistics.median(map(abs, errors)):.1f} %",
                pct(worst),
            ]
        table.add_row(*row)
    return table


def case_table(title: str, rows: list[tuple[fidelity.Scored, ...]]) -> Table:
    table = Table(title=title)
    for col in (
        "reference",
        "Mbps",
        "delay ms",
        "loss",
        "bytes",
        "flows",
        "window B",
        "measured s",
    ):
        table.add_column(col, justify="right")
    for t in TRANSPORTS:
        table.add_column(f"{t} s", justify="right")
        table.add_column(f"{t} err", justify="right")
    for scored in rows:
        c = scored[0].case
        cells = [
            c.reference,
            f"{c.rate_mbps:g}",
            f"{c.one_way_delay_ms:g}",
            f"{c.loss:g}",
            f"{c.size_bytes:,}",
            str(c.flows),
            f"{min(c.send_buffer_bytes, c.receive_buffer_bytes):,}",
            f"{c.measured_s:.4f}",
        ]
        for s in scored:
            cells += [f"{s.model_s:.4f}", pct(s.error)]
        table.add_row(*cells)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE, help="a CSV")
    parser.add_argument("--json", action="store_true", help="print one line of JSON only")
    parser.add_argument("--cases", action="store_true", help="list every case, not just misses")
    args = parser.parse_args()
    try:
        cases = fidelity.load_reference(args.reference)
    except fidelity.ReferenceError as err:
        print(f"fidelity: {err}", file=sys.stderr)
        raise SystemExit(2) from None

    t0 = time.perf_counter()
    scored = {t: fidelity.score(cases, t) for t in TRANSPORTS}
    elapsed = time.perf_counter() - t0
    summaries = {t: fidelity.summary(scored[t]) for t in TRANSPORTS}
    if args.json:
        print(json.dumps(summaries))
        return

    console = Console(width=200)
    table = Table(title=f"Transfer times against {args.reference.name}: {len(cases)} cases")
    for col in ("transport", "cases", "within 5 %", "median |err|", "worst |err|", "worst case"):
        table.add_column(col, justify="right")
    for t in TRANSPORTS:
        s = summaries[t]
        worst = max(scored[t], key=lambda x: abs(x.error))
        c = worst.case
        table.add_row(
            t,
            str(s["cases"]),
            f"{100 * s['within_5pct']:.1f} %",
            f"{100 * s['median_abs_err']:.2f} %",
            f"{100 * s['worst_err']:.1f} %",
            f"{c.size_bytes:,} B x{c.flows} at {c.rate_mbps:g} Mbps, {c.one_way_delay_ms:g} ms: "
            f"{c.measured_s:.4f} s measured, {worst.model_s:.4f} s model",
        )
    console.print(table)
    console.print(
        group_table("Errors by size_bytes", lambda c: c.size_bytes, scored, lambda v: f"{v:,}")
    )
    console.print(group_table("Errors by rate_mbps", lambda c: c.rate_mbps, scored))
    console.print(group_table("Errors by one_way_delay_ms", lambda c: c.one_way_delay_ms, scored))
    console.print(group_table("Errors by flows", lambda c: c.flows, scored))
    console.print(group_table("Errors by loss", lambda c: c.loss, scored))
    rows = list(zip(*(scored[t] for t in TRANSPORTS), strict=True))
    if args.cases:
        console.print(case_table("Every case", rows))
    else:
        misses = [r for r in rows if abs(r[-1].error) > 0.05]
        misses.sort(key=lambda r: r[-1].error)
        console.print(
            case_table(f"Cases where tcp misses by more than 5 % ({len(misses)})", misses)
        )
    print(
        f"{len(cases)} cases x {len(TRANSPORTS)} transports replayed in {elapsed:.2f} s; "
        "errors are (model - measured) / measured, negative = too fast"
    )


if __name__ == "__main__":
    main()
