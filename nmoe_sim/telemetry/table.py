"""The summary table shown at the end of a run (rendered from summary.json's model)."""

from __future__ import annotations

from rich.table import Table

from nmoe_sim.telemetry.summary import RunSummary


def summary_table(summary: RunSummary) -> Table:
    table = Table(title=f"{summary.scenario} (seed {summary.seed})")
    columns = ["method", "acc global", "acc local", "bytes total", "sim time", "wall time"]
    # The serving stage's headline figures, when any method served queries.
    served = any(m.inference is not None for m in summary.methods.values())
    if served:
        columns += ["serve acc", "serve p99"]
    for column in columns:
        if column == "method":
            table.add_column(column, no_wrap=True)
        else:
            table.add_column(column, justify="right")
    for name, m in summary.methods.items():
        cells = [
            name,
            f"{100 * m.accuracy_global:.2f} %",
            f"{100 * m.accuracy_local:.2f} %",
            _bytes(m.bytes_total),
            f"{m.sim_time_s:.1f} s",
            f"{m.wall_time_s:.1f} s",
        ]
        if served:
            inf = m.inference
            cells += (
                [f"{100 * inf.accuracy:.2f} %", f"{inf.latency_p99_ms:.1f} ms"]
                if inf is not None
                else ["", ""]
            )
        table.add_row(*cells)
    return table


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
