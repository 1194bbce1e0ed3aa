"""What a network that moves did, as the run's tables: each method's handovers (events.csv), the
states of every changing link over the run (links.csv) and where the nodes were (positions.csv).

Both are pure functions of simulated time (schedules and tracks do not depend on the traffic),
so they are computed once the methods have run, for each method's span [0, its end].
"""

from __future__ import annotations

import math

from nmoe_sim.network.dynamics.links import LinkChanges, link_role
from nmoe_sim.network.mobility.attachment import Handover, Mobility
from nmoe_sim.telemetry.schema import EventRecord, LinkStateRecord, PositionRecord

MAX_LINK_ROWS = 2_000_000  # links.csv beyond this is cut (the README says so); one warning


def handover_events(mobility: Mobility | None, end_s: float) -> list[EventRecord] | None:
    """The handovers of [0, end_s], or None where clients do not move among base stations."""
    if mobility is None or not mobility.hands_over:
        return None
    return [
        EventRecord(h.t_s, "handover", h.client, h.source, h.target)
        for h in mobility.handovers_between(-math.inf, end_s)
    ]


def link_states(
    changes: LinkChanges | None,
    mobility: Mobility | None,
    end_s: float,
    max_rows: int = MAX_LINK_ROWS,
) -> tuple[list[LinkStateRecord], bool]:
    """Every step of every changing link the run used, over [0, end_s]; a client's access link
    only while the client is attached to its base station. Returns (rows, cut short)."""
    if changes is None:
        return [], False
    handovers = mobility.handovers_between(-math.inf, end_s) if mobility is not None else []
    rows: list[LinkStateRecord] = []
    for (u, v), profile in sorted(changes.used().items()):
        for start, stop in _attached_spans(changes, mobility, handovers, u, v, end_s):
            t = start
            while t < stop:
                state = profile.state_at(t)
                rows.append(
                    LinkStateRecord(
                        f"{u}>{v}",
                        t,
                        state.capacity_bps / 1e6,
                        state.latency_s * 1e3,
                        state.loss,
                    )
                )
                if len(rows) >= max_rows:
                    return rows, True
                t = min(state.until_s, stop)
    return rows, False


def _attached_spans(
    changes: LinkChanges,
    mobility: Mobility | None,
    handovers: list[Handover],
    u: str,
    v: str,
    end_s: float,
) -> list[tuple[float, float]]:
    """When link u -> v is a client's access link: every link but a moving client's always."""
    role = link_role(changes.topology, u, v)
    if mobility is None or not mobility.hands_over or role.kind != "access":
        return [(0.0, end_s)]
    client = role.anchor
    spans: list[tuple[float, float]] = []
    start: float | None = 0.0 if mobility.serving_at(client, 0.0) == role.station else None
    for h in handovers:
        if h.client != client:
            continue
        if h.target == role.station and start is None:
            start = h.t_s
        elif h.source == role.station and start is not None:
            spans.append((start, h.t_s))
            start = None
    if start is not None:
        spans.append((start, end_s))
    return spans


def positions(
    mobility: Mobility | None, end_s: float, max_rows: int = MAX_LINK_ROWS
) -> tuple[list[PositionRecord], bool]:
    """Base stations, then each client's track knots over [0, end_s] (with its position at
    end_s); returns (rows, cut short)."""
    if mobility is None:
        return [], False
    rows = [
        PositionRecord(s, "station", 0.0, x, y) for s, (x, y) in mobility.layout.stations.items()
    ]
    for client in mobility.clients:
        track = mobility.tracks[client]
        track.reach(end_s)
        for t, x, y in zip(track.times, track.xs, track.ys, strict=True):
            if t >= end_s:
                break
            rows.append(PositionRecord(client, "client", t, x, y))
        x, y = track.at(end_s)
        rows.append(PositionRecord(client, "client", end_s, x, y))
        if len(rows) >= max_rows:
            return rows[:max_rows], True
    return rows, False
