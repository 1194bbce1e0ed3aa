"""Positions read from a CSV file: rows `time_s, client, x_m, y_m` (an optional header with those
names, `#` comments); a client moves in a straight line from one of its rows to the next, stands
at its first position before its first row and at its last after its last one. Every client of
the run must appear; every position must be inside the layout's area."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nmoe_sim.network.mobility.layout import Layout
from nmoe_sim.network.mobility.schema import MobilityConfig
from nmoe_sim.network.mobility.track import Track
from nmoe_sim.safe_yaml import YamlInputError, read_text

COLUMNS = ("time_s", "client", "x_m", "y_m")
MAX_BYTES = 256_000_000


class PositionTraceError(ValueError):
    """A position trace that cannot be used; the message names the file and line.
    `unreadable`: the file is missing or cannot be read at all."""

    def __init__(self, message: str, unreadable: bool = False) -> None:
        super().__init__(message)
        self.unreadable = unreadable


def read_positions(path: Path, layout: Layout) -> dict[str, list[tuple[float, float, float]]]:
    """client -> [(time, x, y), ...] in time order, every row checked."""
    if not path.is_file():
        raise PositionTraceError(f"position trace {path} not found (or not a file)", True)
    try:
        lines = read_text(path, "position trace", MAX_BYTES, "CSV text file").splitlines()
    except YamlInputError as err:  # read as every input file is: UTF-8, bounded
        raise PositionTraceError(str(err), True) from None
    rows: dict[str, list[tuple[float, float, float]]] = {}
    x0, y0, x1, y1 = layout.area
    seen_data = False
    for number, raw in enumerate(lines, start=1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        cells = [c.strip() for c in text.split(",")]
        where = f"{path}:{number}"
        if not seen_data and tuple(c.lower() for c in cells) == COLUMNS:
            continue
        seen_data = True
        if len(cells) != 4:
            raise PositionTraceError(
                f"{where}: {len(cells)} columns; a row is time_s, client, x_m, y_m"
            )
        try:
            t, x, y = float(cells[0]), float(cells[2]), float(cells[3])
        except ValueError:
            raise PositionTraceError(
                f"{where}: time_s, x_m and y_m must be numbers, got {cells[0]!r}, {cells[2]!r}, "
                f"{cells[3]!r}"
            ) from None
        if not all(np.isfinite([t, x, y])) or t < 0:
            raise PositionTraceError(f"{where}: time_s must be >= 0 and every number finite")
        client = cells[1]
        if client not in layout.clients:
            raise PositionTraceError(
                f"{where}: unknown client {client!r} (the run's clients are "
                f"{', '.join(list(layout.clients)[:5])}{' ...' if len(layout.clients) > 5 else ''})"
            )
        if not layout.inside(x, y):
            raise PositionTraceError(
                f"{where}: position ({x:g}, {y:g}) m is outside the layout's area "
                f"x {x0:g}..{x1:g}, y {y0:g}..{y1:g} m"
            )
        track = rows.setdefault(client, [])
        if track and t <= track[-1][0]:
            raise PositionTraceError(
                f"{where}: time_s {t:g} for {client} does not come after {track[-1][0]:g}; each "
                "client's rows go forward in time"
            )
        track.append((t, x, y))
    if not rows:
        raise PositionTraceError(f"{path}: empty position trace; it needs rows for every client")
    missing = [c for c in layout.clients if c not in rows]
    if missing:
        raise PositionTraceError(
            f"{path}: no rows for {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}; "
            "a position trace gives every client of the run"
        )
    return rows


def track(
    client: str,
    cfg: MobilityConfig,
    layout: Layout,
    rng: np.random.Generator,
    positions: dict[str, list[tuple[float, float, float]]] | None = None,
) -> Track:
    assert positions is not None  # read once per run by Mobility
    knots = positions[client]
    t, x, y = knots[0]
    tr = Track(0.0, x, y)
    for t, x, y in knots:
        if t > 0.0:
            tr.add(t, x, y)
    return tr
