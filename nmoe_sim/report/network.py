"""A moving network's tables, shaped for the report: each client's access links joined over time
(links.csv), the run's handover timeline (events.csv), handovers per round (rounds.csv), and the
cell boundaries of the base stations (positions.csv).

Plain pandas and numpy, no figures: the figures (figures.py) and the timeline (timeline.py) both
draw from these, and the tests check them by hand.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

# Clients are c0, c1, ... in every topology (network/devices.py); positions.csv and events.csv
# name them too.
CLIENT_NAME = re.compile(r"c\d+")
DIRECTIONS = ("down", "up")  # down: base station > client; up: client > base station
STEP_COLUMNS = ["client", "direction", "station", "link", "t_s", "t_end_s", "bandwidth_mbps"]


def split_link(name: str) -> tuple[str, str] | None:
    """`u>v` -> (u, v); None for any other shape."""
    parts = str(name).split(">")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


def client_names(
    links: pd.DataFrame | None, events: pd.DataFrame | None, positions: pd.DataFrame | None
) -> set[str]:
    """Every client the tables name: positions.csv's clients, events.csv's moving nodes, and the
    ends of links.csv's links named like a client (c<number>)."""
    clients: set[str] = set()
    if positions is not None:
        clients |= set(positions["node"][positions["role"] == "client"].astype(str))
    if events is not None:
        clients |= set(events["node"].astype(str))
    if links is not None:
        for name in dict.fromkeys(links["link"].astype(str)):
            ends = split_link(name) or ()
            clients |= {e for e in ends if CLIENT_NAME.fullmatch(e)}
    return clients


def access_link(name: str, clients: Iterable[str]) -> tuple[str, str, str] | None:
    """(client, direction, base station) of a client's access link; None for any other link
    (between base stations and the cloud, or device to device)."""
    ends = split_link(name)
    if ends is None:
        return None
    known = set(clients)
    u, v = ends
    u_client = u in known or bool(CLIENT_NAME.fullmatch(u))
    v_client = v in known or bool(CLIENT_NAME.fullmatch(v))
    if u_client and not v_client:
        return u, "up", v
    if v_client and not u_client:
        return v, "down", u
    return None


def run_end(ends: Iterable[float], *frames: tuple[pd.DataFrame | None, str]) -> float:
    """The end of the run's simulated span: the latest method end given, or the latest time in
    the tables (frame, column) where that is later."""
    end = max((float(e) for e in ends if e is not None and math.isfinite(e)), default=0.0)
    for frame, column in frames:
        if frame is not None and len(frame):
            end = max(end, float(frame[column].max()))
    return end


def method_ends(methods: Mapping[str, Any]) -> list[float]:
    """Each method's end on the simulated clock (summary.json): its training, or its serving
    where later (as the run computes the span its tables cover)."""
    ends = []
    for m in methods.values():
        end = float(m.sim_time_s)
        if m.inference is not None:
            end = max(end, float(m.inference.t_start_s) + float(m.inference.sim_time_s))
        ends.append(end)
    return ends


def access_steps(links: pd.DataFrame, clients: Iterable[str], end_s: float) -> pd.DataFrame:
    """Each client's access rate over time, per direction: its access links' rows (whichever
    base station it was attached to) in time order, each holding until the next one, the last
    until `end_s`. Columns STEP_COLUMNS."""
    clients = set(clients)
    rows = []
    for index, name in enumerate(links["link"].astype(str)):
        role = access_link(name, clients)
        if role is not None:
            rows.append((*role, name, index))
    if not rows:
        return pd.DataFrame(columns=STEP_COLUMNS)
    roles = pd.DataFrame(rows, columns=["client", "direction", "station", "link", "row"])
    picked = links.iloc[roles["row"].to_numpy()]
    steps = roles.assign(
        t_s=picked["t_s"].to_numpy(float), bandwidth_mbps=picked["bandwidth_mbps"].to_numpy(float)
    ).drop(columns="row")
    steps = steps.sort_values(["client", "direction", "t_s"], kind="stable")
    following = steps.groupby(["client", "direction"], sort=False)["t_s"].shift(-1)
    steps["t_end_s"] = following.fillna(max(end_s, float(steps["t_s"].max())))
    return steps[STEP_COLUMNS].reset_index(drop=True)


def link_counters(links: pd.DataFrame, clients: Iterable[str]) -> list[tuple[str, float, float]]:
    """(link, time, Mbit/s) samples of every changing link: one per links.csv row, and a 0 where
    a client's access link stops being listed because the client's next access link row is on
    another base station (it moved: this link is not its access link any more). Sorted by link,
    then time."""
    samples = [
        (str(name), float(t), float(bw))
        for name, t, bw in zip(links["link"], links["t_s"], links["bandwidth_mbps"], strict=True)
    ]
    steps = access_steps(links, clients, 0.0)
    if len(steps):
        following = steps.groupby(["client", "direction"], sort=False)["link"].shift(-1)
        moved = following.notna() & (following != steps["link"])
        for name, t in zip(steps["link"][moved], steps["t_end_s"][moved], strict=True):
            samples.append((str(name), float(t), 0.0))
    return sorted(samples, key=lambda s: (s[0], s[1]))


def time_weighted_means(steps: pd.DataFrame) -> dict[str, float]:
    """direction -> the clients' mean access rate (Mbit/s): each client's rate averaged over the
    time it has one, then the mean over clients."""
    out: dict[str, float] = {}
    for direction in DIRECTIONS:
        rows = steps[steps["direction"] == direction]
        per_client = []
        for _, group in rows.groupby("client"):
            span = (group["t_end_s"] - group["t_s"]).to_numpy(float)
            rate = group["bandwidth_mbps"].to_numpy(float)
            if span.sum() > 0:
                per_client.append(float((span * rate).sum() / span.sum()))
            elif len(rate):
                per_client.append(float(rate.mean()))
        if per_client:
            out[direction] = float(np.mean(per_client))
    return out


def handover_rows(events: pd.DataFrame) -> pd.DataFrame:
    return events[events["kind"].astype(str) == "handover"]


def handover_timeline(events: pd.DataFrame) -> pd.DataFrame:
    """The run's handovers: every method meets the same ones up to its own end, so the method
    with the most rows (the longest span) has them all. Columns t_s, node, source, target."""
    rows = handover_rows(events)
    if rows.empty:
        return pd.DataFrame(columns=["t_s", "node", "source", "target"])
    sizes = rows.groupby("method")["t_s"].agg(["size", "max"])
    longest = sizes.sort_values(["size", "max"], ascending=False, kind="stable").index[0]
    picked = rows[rows["method"] == longest][["t_s", "node", "source", "target"]]
    return picked.sort_values(["t_s", "node"], kind="stable").reset_index(drop=True)


def method_handovers(events: pd.DataFrame, method: str) -> pd.DataFrame:
    """The handovers within a method's span: its own events.csv rows. A pipeline of shared
    stages has none of its own; its stages are the start of each of its gating methods' spans, so
    the longest of those gives them. A method with neither had no handover."""
    rows = handover_rows(events)
    own = rows[rows["method"] == method]
    if len(own):
        return own
    descendants = rows[rows["method"].astype(str).str.startswith(method + "/")]
    if descendants.empty:
        return own
    return handover_timeline(descendants)


def round_handovers(rounds: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Every round of rounds.csv with its duration and the handovers of its method's span with a
    time in [t_start_s, t_end_s]. Columns method, stage, round, duration_s, handovers."""
    out = []
    for method, group in rounds.groupby("method", sort=False):
        times = method_handovers(events, str(method))["t_s"].to_numpy(float)
        for stage, number, start, stop in zip(
            group["stage"].astype(str),
            group["round"].to_numpy(int),
            group["t_start_s"].to_numpy(float),
            group["t_end_s"].to_numpy(float),
            strict=True,
        ):
            count = int(((times >= start) & (times <= stop)).sum())
            out.append((str(method), stage, int(number), float(stop - start), count))
    return pd.DataFrame(out, columns=["method", "stage", "round", "duration_s", "handovers"])


def round_time_table(counts: pd.DataFrame) -> pd.DataFrame:
    """Per method: rounds, rounds with a handover, and the mean round time without and with
    (seconds; empty where a method has no such round)."""
    rows = []
    for method, group in counts.groupby("method", sort=False):
        without = group["duration_s"][group["handovers"] == 0]
        with_ = group["duration_s"][group["handovers"] > 0]
        rows.append(
            {
                "method": method,
                "rounds": str(len(group)),
                "rounds with a handover": str(len(with_)),
                "mean round time without (s)": f"{without.mean():.3f}" if len(without) else "",
                "mean round time with (s)": f"{with_.mean():.3f}" if len(with_) else "",
            }
        )
    return pd.DataFrame(rows)


def handovers_per_method(
    events: pd.DataFrame | None, summary_counts: Mapping[str, int | None]
) -> dict[str, int]:
    """method -> handovers within its span: summary.json's `handovers` where given, else its
    events.csv rows."""
    out = {m: int(n) for m, n in summary_counts.items() if n is not None}
    if events is not None:
        counted = handover_rows(events).groupby("method").size()
        for method, n in counted.items():
            out.setdefault(str(method), int(n))
    return out


def tracks(positions: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """client -> its track knots (t_s, x_m, y_m) in time order."""
    clients = positions[positions["role"] == "client"]
    return {
        str(node): group[["t_s", "x_m", "y_m"]].sort_values("t_s", kind="stable")
        for node, group in clients.groupby("node", sort=False)
    }


def stations(positions: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """base station -> (x, y): its first row."""
    rows = positions[positions["role"] == "station"].drop_duplicates("node")
    return {
        str(n): (float(x), float(y))
        for n, x, y in zip(rows["node"], rows["x_m"], rows["y_m"], strict=True)
    }


def position_at(track: pd.DataFrame, t: float) -> tuple[float, float]:
    """Where a client is at time t: on the straight line between the knots around t."""
    times = track["t_s"].to_numpy(float)
    return (
        float(np.interp(t, times, track["x_m"].to_numpy(float))),
        float(np.interp(t, times, track["y_m"].to_numpy(float))),
    )


Segment = tuple[tuple[float, float], tuple[float, float]]


def cell_edges(
    sites: Mapping[str, tuple[float, float]], box: tuple[float, float, float, float]
) -> list[Segment]:
    """The boundaries between base stations' cells (each point served by its nearest station,
    as with equal transmit power) within box = (x_min, x_max, y_min, y_max): for each pair of
    stations, the part of their perpendicular bisector that no third station is nearer to."""
    points = np.unique(np.array(list(sites.values()), dtype=float).reshape(-1, 2), axis=0)
    x0, x1, y0, y1 = box
    scale = max(x1 - x0, y1 - y0, 1.0)
    edges: list[Segment] = []
    for i in range(len(points)):
        for j in range(i + 1, len(points)):
            a, b = points[i], points[j]
            mid = (a + b) / 2
            d = np.array([a[1] - b[1], b[0] - a[0]])
            d /= np.linalg.norm(d)
            lo, hi = -math.inf, math.inf
            # p(s) = mid + s d stays nearer to a than to any other station k, and in the box:
            # each a linear bound on s, coef * s <= rhs.
            bounds = [(d[0], x1 - mid[0]), (-d[0], mid[0] - x0)]
            bounds += [(d[1], y1 - mid[1]), (-d[1], mid[1] - y0)]
            for k in range(len(points)):
                if k not in (i, j):
                    c = points[k]
                    bounds.append((2 * d @ (c - a), c @ c - a @ a - 2 * mid @ (c - a)))
            for coef, rhs in bounds:
                if abs(coef) < 1e-12:
                    if rhs < 0:
                        lo, hi = math.inf, -math.inf
                elif coef > 0:
                    hi = min(hi, rhs / coef)
                else:
                    lo = max(lo, rhs / coef)
            if hi - lo > 1e-9 * scale:
                p, q = mid + lo * d, mid + hi * d
                edges.append(((float(p[0]), float(p[1])), (float(q[0]), float(q[1]))))
    return edges


def nearest_station(
    sites: Mapping[str, tuple[float, float]], xs: np.ndarray, ys: np.ndarray
) -> np.ndarray:
    """Index (in `sites` order) of the nearest station to each point."""
    points = np.array(list(sites.values()), dtype=float).reshape(-1, 2)
    dist = (xs[..., None] - points[:, 0]) ** 2 + (ys[..., None] - points[:, 1]) ** 2
    return np.asarray(dist.argmin(axis=-1))
