"""Fidelity benchmark: the network clock's transfer times against measured TCP, fluid beside tcp.

    .venv/bin/python benchmarks/fidelity.py                     # the ns-3 references shipped here
    .venv/bin/python benchmarks/fidelity.py --reference my.csv  # your own (may be repeated)
    .venv/bin/python benchmarks/fidelity.py --cases             # every case, not just the misses
    .venv/bin/python benchmarks/fidelity.py --json              # one line of JSON, fluid and tcp

Every case of the reference (equal flows started together over one link, each on a new
connection: see benchmarks/fidelity/README.md for the format) is replayed through the real
FlowNetwork with the reference's segment size, framing, initial window and buffers, and its
completion time (one flow: its own; several: the last to finish) compared with the measured one.
Errors are relative and signed: negative is too fast. Rows with loss > 0 use the loss model.

Cases whose `rate_steps` change the link's rate (ns3_rate_steps.csv) are scored apart from the
static ones (constant rate, including a single-pair `rate_steps` such as `0:10`): by profile (the
rates in order, `10>1`, `50>5>50`) and by when the first step falls. In `--json` the static cases'
summary per transport is at the top level as before, the stepped cases' under "rate_steps".
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
from nmoe_sim.network.transports.tcp import HEADER_BYTES  # noqa: E402

DEFAULT_REFERENCES = [
    ROOT / "benchmarks" / "fidelity" / "ns3_reference.csv",
    ROOT / "benchmarks" / "fidelity" / "ns3_rate_steps.csv",
]
TRANSPORTS = fidelity.TRANSPORT_NAMES


# A table's grouping: its column's name, the key of a case, the key as printed.
Grouping = tuple[str, Callable[[fidelity.Case], object], Callable[[object], str]]


def thousands(v: object) -> str:
    return f"{v:,}"


def first_step(case: fidelity.Case) -> str:
    """When a stepped case's first step falls: `early` if by the end of the first flight (six
    one-way delays, i.e. the handshake and two round trips, plus the initial window at the first
    rate on the wire: how ns3_rate_steps.csv placed its early steps, to 3 significant digits),
    else `late`."""
    assert case.rate_steps is not None and len(case.rate_steps) > 1
    wire_bits = (
        8
        * case.initial_window_segments
        * (case.segment_bytes + HEADER_BYTES + case.link_header_bytes)
    )
    flight_s = 6 * case.one_way_delay_ms / 1e3 + wire_bits / (case.rate_mbps * 1e6)
    return "early" if case.rate_steps[1][0] <= 1.01 * flight_s else "late"


def pct(x: float) -> str:
    return f"{100 * x:+.1f} %"


def group_table(
    title: str,
    key: Callable[[fidelity.Case], object],
    scored: dict[str, list[fidelity.Scored]],
    label: Callable[[object], str] = str,
    column: str | None = None,
) -> Table:
    table = Table(title=title)
    table.add_column(column or title.split(" by ")[-1], justify="right")
    table.add_column("cases", justify="right")
    for t in TRANSPORTS:
        table.add_column(f"{t} within 5 %", justify="right")
        table.add_column(f"{t} median |err|", justify="right")
        table.add_column(f"{t} worst", justify="right")
    groups: dict[object, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for t in TRANSPORTS:
        for s in scored[t]:
            groups[key(s.case)][t].append(s.error)
    for value in sorted(groups, key=lambda v: (isinstance(v, str), v)):
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
    steps = any(s.case.rate_steps is not None for r in rows for s in r)
    for col in (
        "reference",
        *(["rate steps"] if steps else []),
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
            *([fidelity.format_rate_steps(c.rate_steps)] if steps else []),
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


def describe(s: fidelity.Scored) -> str:
    c = s.case
    steps = f", steps {fidelity.format_rate_steps(c.rate_steps)}" if c.stepped else ""
    return (
        f"{c.size_bytes:,} B x{c.flows} at {c.rate_mbps:g} Mbps, {c.one_way_delay_ms:g} ms{steps}: "
        f"{c.measured_s:.4f} s measured, {s.model_s:.4f} s model"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reference",
        type=Path,
        action="append",
        help="a CSV; may be repeated (default: "
        + ", ".join(p.name for p in DEFAULT_REFERENCES)
        + ")",
    )
    parser.add_argument("--json", action="store_true", help="print one line of JSON only")
    parser.add_argument("--cases", action="store_true", help="list every case, not just misses")
    args = parser.parse_args()
    references: list[Path] = args.reference or DEFAULT_REFERENCES
    cases: list[fidelity.Case] = []
    try:
        for reference in references:
            cases += fidelity.load_reference(reference)
    except fidelity.ReferenceError as err:
        print(f"fidelity: {err}", file=sys.stderr)
        raise SystemExit(2) from None

    t0 = time.perf_counter()
    scored = {t: fidelity.score(cases, t) for t in TRANSPORTS}
    elapsed = time.perf_counter() - t0
    static = {t: [s for s in scored[t] if not s.case.stepped] for t in TRANSPORTS}
    stepped = {t: [s for s in scored[t] if s.case.stepped] for t in TRANSPORTS}
    sets = [
        (name, part)
        for name, part in (("static", static), ("rate steps", stepped))
        if part[TRANSPORTS[0]]
    ]
    summaries = {name: {t: fidelity.summary(part[t]) for t in TRANSPORTS} for name, part in sets}
    if args.json:
        out: dict[str, object] = dict(summaries.get("static", {}))
        if "rate steps" in summaries:
            out["rate_steps"] = summaries["rate steps"]
        print(json.dumps(out))
        return

    console = Console(width=200)
    n_stepped = len(stepped[TRANSPORTS[0]])
    table = Table(
        title=f"Transfer times against {', '.join(p.name for p in references)}: {len(cases)} cases"
        + (f" ({len(cases) - n_stepped} static, {n_stepped} with rate steps)" if n_stepped else "")
    )
    columns = ["transport", "cases", "within 5 %", "median |err|", "worst |err|", "worst case"]
    if n_stepped:
        columns.insert(0, "rate steps")
    for col in columns:
        table.add_column(col, justify="right")
    for name, part in sets:
        for t in TRANSPORTS:
            s = summaries[name][t]
            worst = max(part[t], key=lambda x: abs(x.error))
            table.add_row(
                *(["yes" if name == "rate steps" else "no"] if n_stepped else []),
                t,
                str(s["cases"]),
                f"{100 * s['within_5pct']:.1f} %",
                f"{100 * s['median_abs_err']:.2f} %",
                f"{100 * s['worst_err']:.1f} %",
                describe(worst),
            )
    console.print(table)
    if static[TRANSPORTS[0]]:
        where = " (static cases)" if n_stepped else ""
        static_groups: list[Grouping] = [
            ("size_bytes", lambda c: c.size_bytes, thousands),
            ("rate_mbps", lambda c: c.rate_mbps, str),
            ("one_way_delay_ms", lambda c: c.one_way_delay_ms, str),
            ("flows", lambda c: c.flows, str),
            ("loss", lambda c: c.loss, str),
        ]
        if len({s.case.reference for s in static[TRANSPORTS[0]]}) > 1:
            static_groups.append(("reference", lambda c: c.reference, str))
        for title, key, label in static_groups:
            console.print(
                group_table(f"Errors by {title}{where}", key, static, label, column=title)
            )
    if n_stepped:
        stepped_groups: list[Grouping] = [
            ("profile", lambda c: c.profile, str),
            ("first step", first_step, str),
            ("one_way_delay_ms", lambda c: c.one_way_delay_ms, str),
            ("flows", lambda c: c.flows, str),
            ("size_bytes", lambda c: c.size_bytes, thousands),
            ("window B", lambda c: min(c.send_buffer_bytes, c.receive_buffer_bytes), thousands),
        ]
        for title, key, label in stepped_groups:
            console.print(
                group_table(f"Rate-step cases by {title}", key, stepped, label, column=title)
            )
    for name, part in sets:
        rows = list(zip(*(part[t] for t in TRANSPORTS), strict=True))
        which = (
            ("Static cases" if name == "static" else "Rate-step cases") if n_stepped else "Cases"
        )
        if args.cases:
            console.print(
                case_table("Every case" if not n_stepped else f"{which}: every one", rows)
            )
        else:
            misses = [r for r in rows if abs(r[-1].error) > 0.05]
            misses.sort(key=lambda r: r[-1].error)
            console.print(
                case_table(f"{which} where tcp misses by more than 5 % ({len(misses)})", misses)
            )
    print(
        f"{len(cases)} cases x {len(TRANSPORTS)} transports replayed in {elapsed:.2f} s; "
        "errors are (model - measured) / measured, negative = too fast"
    )


if __name__ == "__main__":
    main()
