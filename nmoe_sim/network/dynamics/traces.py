"""Link traces read from files: Mahimahi packet-delivery traces and plain CSV steps.

**Mahimahi** (`mm-link`'s format): one line per delivery opportunity of one 1,500-byte packet,
the line being its time in integer milliseconds from the trace's start (several lines with one
time: several packets in that millisecond); the trace wraps around at its last time. We read it
as a fluid rate: an interval of the trace from one opportunity time to the first opportunity time
at least `bin_ms` later carries the packets delivered in it, at a constant rate. Intervals end on
opportunity times, so a trace of evenly spaced lines is exactly a constant-rate link whatever
`bin_ms` is, and an outage (a gap without lines) is an interval of almost no rate. The packets of
time 0 are those of the wrap-around (time = the period).

**CSV**: rows `time_s, bandwidth_mbps[, latency_ms[, loss]]`, an optional header naming those
columns, `#` comments; the first row at time 0, times increasing strictly, each value holding until
the next row's time. The last row holds for good, or with `repeat` the trace wraps around: its last
row then closes the period (its time is the period, its values must be the first row's).

Every problem is a `TraceError` naming the file and line and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from nmoe_sim.network.dynamics.steps import Steps, merge_equal
from nmoe_sim.safe_yaml import YamlInputError, read_text
from nmoe_sim.strict import MAX_LATENCY_MS, MAX_MBPS, MIN_MBPS

MAHIMAHI_PACKET_BITS = 1500 * 8
DEFAULT_BIN_MS = 100
MAX_TRACE_BYTES = 256_000_000
CSV_COLUMNS = ("time_s", "bandwidth_mbps", "latency_ms", "loss")


class TraceError(ValueError):
    """A trace file that cannot be used; the message names the file, the line and the rule.
    `unreadable`: the file is missing or cannot be read at all (a user fixes that first)."""

    def __init__(self, message: str, unreadable: bool = False) -> None:
        super().__init__(message)
        self.unreadable = unreadable


@dataclass(frozen=True)
class Trace:
    """A link's state over time read from a file: capacity in bits/s, and where the file gives
    them, one-way latency in seconds and loss; each None where the file does not say."""

    source: str
    capacity_bps: Steps
    latency_s: Steps | None = None
    loss: Steps | None = None

    @property
    def length_s(self) -> float:
        """How long the trace runs before it wraps (or its last step's time)."""
        steps = self.capacity_bps
        return steps.period_s if steps.period_s is not None else steps.times[-1]

    def shifted(self, offset_s: float) -> Trace:
        def shift(s: Steps | None) -> Steps | None:
            return None if s is None else s.shifted(offset_s)

        return Trace(
            self.source,
            self.capacity_bps.shifted(offset_s),
            shift(self.latency_s),
            shift(self.loss),
        )


def read_trace(
    path: str | Path, fmt: str = "auto", *, repeat: bool = False, bin_ms: int = DEFAULT_BIN_MS
) -> Trace:
    """The trace in `path`: `fmt` `mahimahi`, `csv`, or `auto` (a `.csv` file is CSV, any other
    a Mahimahi trace). `repeat` applies to CSV (Mahimahi traces always wrap), `bin_ms` to
    Mahimahi traces."""
    path = Path(path)
    if fmt == "auto":
        fmt = "csv" if path.suffix.lower() == ".csv" else "mahimahi"
    lines = _read_lines(path)
    if fmt == "mahimahi":
        return read_mahimahi_lines(lines, str(path), bin_ms)
    if fmt == "csv":
        return read_csv_lines(lines, str(path), repeat=repeat)
    raise TraceError(f"{path}: unknown trace format {fmt!r}; use auto, mahimahi or csv")


def _read_lines(path: Path) -> list[str]:
    """The file's lines, read as every input file is (safe_yaml.read_text: UTF-8, bounded)."""
    if not path.is_file():
        raise TraceError(f"trace file {path} not found (or not a file)", unreadable=True)
    try:
        return read_text(path, "trace", MAX_TRACE_BYTES, "text file").splitlines()
    except YamlInputError as err:
        raise TraceError(str(err), unreadable=True) from None


def read_mahimahi_lines(lines: list[str], source: str, bin_ms: int = DEFAULT_BIN_MS) -> Trace:
    counts: dict[int, int] = {}
    last = -1
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text:
            if number == len(lines):
                continue
            raise TraceError(
                f"{source}:{number}: empty line; every line is one integer millisecond"
            )
        if not text.isdigit():
            raise TraceError(
                f"{source}:{number}: {text[:40]!r} is not a time in whole milliseconds; a "
                "Mahimahi trace has one non-negative integer per line"
            )
        ms = int(text)
        if ms < last:
            raise TraceError(
                f"{source}:{number}: time {ms} ms comes after {last} ms; the times of a Mahimahi "
                "trace never decrease"
            )
        if ms > 10**12:
            raise TraceError(f"{source}:{number}: time {ms} ms is beyond any trace (> 10^12 ms)")
        last = ms
        counts[ms] = counts.get(ms, 0) + 1
    if not counts:
        raise TraceError(f"{source}: empty trace; a Mahimahi trace needs at least one line")
    period = last
    if period <= 0:
        raise TraceError(
            f"{source}: every line is at time 0 ms; a Mahimahi trace's last time is its length "
            "and must be at least 1 ms"
        )
    at_period = counts.pop(0, 0)
    counts[period] = counts.get(period, 0) + at_period
    times: list[float] = []
    rates: list[float] = []
    start = 0
    packets = 0
    for ms in sorted(counts):
        packets += counts[ms]
        if ms - start >= bin_ms or ms == period:
            times.append(start / 1e3)
            rates.append(max(packets * MAHIMAHI_PACKET_BITS * 1e3 / (ms - start), MIN_MBPS * 1e6))
            start, packets = ms, 0
    times, rates = merge_equal(times, rates)
    return Trace(source, Steps(times, rates, period_s=period / 1e3))


def read_csv_lines(lines: list[str], source: str, *, repeat: bool = False) -> Trace:
    rows: list[tuple[int, list[float]]] = []
    width = 0
    for number, raw in enumerate(lines, start=1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        cells = [c.strip() for c in text.split(",")]
        if not rows and not width and not _is_number(cells[0]):
            names = tuple(c.lower() for c in cells)
            if names != CSV_COLUMNS[: len(names)] or len(names) < 2:
                raise TraceError(
                    f"{source}:{number}: header {text[:60]!r}; a CSV trace's columns are "
                    f"{', '.join(CSV_COLUMNS[:2])}[, latency_ms[, loss]] in that order"
                )
            width = len(names)
            continue
        if not 2 <= len(cells) <= 4:
            raise TraceError(
                f"{source}:{number}: {len(cells)} columns; a CSV trace row is "
                "time_s, bandwidth_mbps[, latency_ms[, loss]]"
            )
        if width and len(cells) != width:
            raise TraceError(
                f"{source}:{number}: {len(cells)} columns where the header has {width}"
            )
        if rows and len(cells) != len(rows[0][1]):
            raise TraceError(
                f"{source}:{number}: {len(cells)} columns where line {rows[0][0]} has "
                f"{len(rows[0][1])}; every row has the same columns"
            )
        values = []
        for name, cell in zip(CSV_COLUMNS, cells, strict=False):
            if not _is_number(cell):
                raise TraceError(f"{source}:{number}: {name} {cell[:40]!r} is not a number")
            values.append(float(cell))
        _check_row(source, number, values, rows[-1][1][0] if rows else None)
        rows.append((number, values))
    if not rows:
        raise TraceError(f"{source}: empty trace; a CSV trace needs at least one row")
    period: float | None = None
    if repeat:
        if len(rows) < 2:
            raise TraceError(
                f"{source}: a repeating trace needs a last row that closes the period (its time "
                "is the period, its values the first row's)"
            )
        number, closing = rows.pop()
        if closing[1:] != rows[0][1][1:]:
            raise TraceError(
                f"{source}:{number}: a repeating trace's last row closes the period and must "
                f"repeat the first row's values {rows[0][1][1:]}, got {closing[1:]}"
            )
        period = closing[0]
    times = [r[1][0] for r in rows]

    def column(i: int, scale: float) -> Steps | None:
        if len(rows[0][1]) <= i:
            return None
        t, v = merge_equal(times, [r[1][i] * scale for r in rows])
        return Steps(t, v, period_s=period)

    capacity = column(1, 1e6)
    assert capacity is not None
    return Trace(source, capacity, column(2, 1e-3), column(3, 1.0))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_row(source: str, number: int, values: list[float], previous: float | None) -> None:
    where = f"{source}:{number}"
    if not all(math.isfinite(v) for v in values):
        raise TraceError(f"{where}: NaN or infinity; every value is a finite number")
    t = values[0]
    if previous is None and t != 0:
        raise TraceError(f"{where}: the first row is at time_s {t:g}; a trace starts at 0")
    if previous is not None and t <= previous:
        raise TraceError(
            f"{where}: time_s {t:g} does not come after {previous:g}; times increase strictly"
        )
    bw = values[1]
    if not MIN_MBPS <= bw <= MAX_MBPS:
        raise TraceError(
            f"{where}: bandwidth_mbps {bw:g} is outside {MIN_MBPS:g}..{MAX_MBPS:g} Mbit/s (an "
            f"outage is a rate of {MIN_MBPS:g})"
        )
    if len(values) > 2 and not 0 <= values[2] <= MAX_LATENCY_MS:
        raise TraceError(f"{where}: latency_ms {values[2]:g} is outside 0..{MAX_LATENCY_MS:g} ms")
    if len(values) > 3 and not 0 <= values[3] < 1:
        raise TraceError(f"{where}: loss {values[3]:g} is outside [0, 1)")
