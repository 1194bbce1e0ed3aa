"""The summary table shown at the end of a run (rendered from summary.json's contents)."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title=f"{summary['scenario']} (seed {summary['seed']})")
    for column in ("method", "acc global", "acc local", "bytes total", "sim time", "wall time"):
        if column == "method":
            table.add_column(column, no_wrap=True)
        else:
            table.add_column(column, justify="right")
    for name, m in summary["methods"].items():
        table.add_row(
            name,
            f"{100 * m['accuracy_global']:.2f} %",
            f"{100 * m['accuracy_local']:.2f} %",
            _bytes(m["bytes_total"]),
            f"{m['sim_time_s']:.1f} s",
            f"{m['wall_time_s']:.1f} s",
        )
    return table


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
