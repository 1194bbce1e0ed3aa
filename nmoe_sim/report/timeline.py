"""A run's simulated timeline as Chrome trace-event JSON (opens in Perfetto / chrome://tracing).

One process per method, one track per node; every compute task (tasks.csv) and every transfer
(trace.csv, on the sender's track) is a complete event ("ph": "X") whose `ts` / `dur` are
microseconds of *simulated* time, the unit the format expects. Slices on one track must nest:
where a node's events overlap without nesting (concurrent sends, a transfer crossing a compute
task), the later ones go to extra tracks named "<node> (2)", "<node> (3)", ... kept next to the
node's own track.

Where the network moves (events.csv, links.csv), each handover is an instant event ("ph": "i",
thread scope) on the moving client's track in each method's process, and every changing link's
capacity is a counter ("ph": "C", Mbit/s) in a process of its own, "network (links.csv)": one
counter track per link, each links.csv row a sample, and a 0 where a client's access link stops
being its access link (the client moved to another base station). A run without those files gets
exactly the events it always had.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import pandas as pd

from nmoe_sim.report.network import link_counters

TASK_FIELDS = ("method", "node", "task", "t_start_s", "t_end_s", "host_wall_s", "status")
TRANSFER_FIELDS = ("method", "t_start_s", "t_end_s", "src", "dst", "kind", "stage", "round")
TRANSFER_ARGS = ("size_bytes", "round", "stage", "path", "staleness")


def microseconds(seconds: float) -> float:
    """Simulated seconds -> trace microseconds, rounded to the nanosecond so that float noise
    (0.1 * 1e6 = 100000.00000000001) does not leak into the file."""
    return round(float(seconds) * 1e6, 3)


def node_order(nodes: Iterable[str]) -> list[str]:
    """The server first, then clients c0, c1, ..., c10 in numeric order, then the rest."""

    def key(node: str) -> tuple[int, str, int]:
        match = re.fullmatch(r"([A-Za-z_]+)(\d+)", node)
        rank = 0 if node in ("server", "cloud") else 1 if re.fullmatch(r"c\d+", node) else 2
        if match:
            return rank, match.group(1), int(match.group(2))
        return rank, node, -1

    return sorted(set(nodes), key=key)


def _json_value(value: Any) -> Any:
    """Plain JSON values: numpy scalars unwrapped, NaN (missing) as null, whole floats as int."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
    return value


class _Lanes:
    """Greedy assignment of one node's slices to tracks so that slices on a track nest."""

    def __init__(self) -> None:
        self.stacks: list[list[float]] = []  # per lane: end times of the open slices

    def place(self, start: float, end: float) -> int:
        for lane, stack in enumerate(self.stacks):
            while stack and stack[-1] <= start:
                stack.pop()
            if not stack or end <= stack[-1]:
                stack.append(end)
                return lane
        self.stacks.append([end])
        return len(self.stacks) - 1


def chrome_trace_events(
    tasks: pd.DataFrame,
    trace: pd.DataFrame,
    network_events: pd.DataFrame | None = None,
    links: pd.DataFrame | None = None,
    clients: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Trace events for a run's tasks.csv and trace.csv frames (either may be empty), and where
    given its events.csv and links.csv frames (`clients`: names of clients beyond c<number>).

    Metadata events come first: a `process_name` per method (pid 1, 2, ... in sorted method
    order) and a `thread_name` per track, then the network process's name (pid after the
    methods'); then one "X" event per task row and per transfer row, one "i" event per
    events.csv row, and the links' "C" events.
    """
    tasks = tasks if len(tasks) else pd.DataFrame(columns=list(TASK_FIELDS))
    trace = trace if len(trace) else pd.DataFrame(columns=[*TRANSFER_FIELDS, "size_bytes"])
    slices: list[tuple[str, str, dict[str, Any]]] = []  # (method, node, event without pid/tid)
    for row in tasks.to_dict("records"):
        slices.append(
            (
                str(row["method"]),
                str(row["node"]),
                {
                    "name": str(row["task"]),
                    "cat": "compute",
                    "ph": "X",
                    "ts": microseconds(row["t_start_s"]),
                    "dur": microseconds(row["t_end_s"]) - microseconds(row["t_start_s"]),
                    "args": {
                        "host_wall_s": _json_value(row.get("host_wall_s")),
                        "status": _json_value(row.get("status")),
                    },
                },
            )
        )
    for row in trace.to_dict("records"):
        slices.append(
            (
                str(row["method"]),
                str(row["src"]),
                {
                    "name": f"send {row['kind']} → {row['dst']}",
                    "cat": "transfer",
                    "ph": "X",
                    "ts": microseconds(row["t_start_s"]),
                    "dur": microseconds(row["t_end_s"]) - microseconds(row["t_start_s"]),
                    "args": {
                        "dst": str(row["dst"]),
                        **{k: _json_value(row[k]) for k in TRANSFER_ARGS if k in row},
                    },
                },
            )
        )
    for _, _, event in slices:
        event["dur"] = round(max(event["dur"], 0.0), 3)

    nodes: dict[str, set[str]] = {}
    for method, node, _ in slices:
        nodes.setdefault(method, set()).add(node)
    for row in trace.to_dict("records"):  # receivers get a track even when they send nothing
        nodes.setdefault(str(row["method"]), set()).add(str(row["dst"]))
    instants = _network_instants(network_events)
    for method, node, _ in instants:  # a client that moves gets a track where it did nothing
        nodes.setdefault(method, set()).add(node)
    methods = sorted(nodes)
    pids = {m: i + 1 for i, m in enumerate(methods)}
    base_tid = {m: {n: 1000 * (i + 1) for i, n in enumerate(node_order(nodes[m]))} for m in methods}

    # Lanes are assigned in time order (parents before their children), then events keep it.
    slices.sort(key=lambda s: (s[0], s[1], s[2]["ts"], -s[2]["dur"]))
    lanes: dict[tuple[str, str], _Lanes] = {}
    used: dict[tuple[str, str], int] = {}
    events: list[dict[str, Any]] = []
    for method, node, event in slices:
        lane = lanes.setdefault((method, node), _Lanes()).place(
            event["ts"], event["ts"] + event["dur"]
        )
        used[(method, node)] = max(used.get((method, node), 0), lane + 1)
        events.append({**event, "pid": pids[method], "tid": base_tid[method][node] + lane})

    meta: list[dict[str, Any]] = []
    for method in methods:
        pid = pids[method]
        meta.append(_meta("process_name", pid, 0, {"name": method}))
        meta.append(_meta("process_sort_index", pid, 0, {"sort_index": pid}))
        for node, tid in base_tid[method].items():
            for lane in range(max(used.get((method, node), 0), 1)):
                name = node if lane == 0 else f"{node} ({lane + 1})"
                meta.append(_meta("thread_name", pid, tid + lane, {"name": name}))
                meta.append(_meta("thread_sort_index", pid, tid + lane, {"sort_index": tid + lane}))
    instants.sort(key=lambda s: (s[0], s[2]["ts"], s[1]))
    events += [{**e, "pid": pids[m], "tid": base_tid[m][n]} for m, n, e in instants]
    if links is not None and len(links):
        pid = len(methods) + 1
        meta.append(_meta("process_name", pid, 0, {"name": "network (links.csv)"}))
        meta.append(_meta("process_sort_index", pid, 0, {"sort_index": pid}))
        events += [
            {
                "name": link,
                "cat": "network",
                "ph": "C",
                "ts": microseconds(t),
                "pid": pid,
                "args": {"Mbit/s": _json_value(mbps)},
            }
            for link, t, mbps in link_counters(links, clients)
        ]
    return meta + events


def _network_instants(events: pd.DataFrame | None) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, node, event without pid/tid): one instant event per events.csv row, on the
    node's own track (thread scope)."""
    if events is None:
        return []
    out = []
    for row in events.to_dict("records"):
        source, target = str(row["source"]), str(row["target"])
        out.append(
            (
                str(row["method"]),
                str(row["node"]),
                {
                    "name": f"{row['kind']} {source} → {target}",
                    "cat": "network",
                    "ph": "i",
                    "s": "t",
                    "ts": microseconds(row["t_s"]),
                    "args": {"source": source, "target": target},
                },
            )
        )
    return out


def _meta(name: str, pid: int, tid: int, args: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "ph": "M", "pid": pid, "tid": tid, "args": args}


def chrome_trace(
    tasks: pd.DataFrame,
    trace: pd.DataFrame,
    other: dict[str, Any] | None = None,
    network_events: pd.DataFrame | None = None,
    links: pd.DataFrame | None = None,
    clients: Iterable[str] = (),
) -> dict[str, Any]:
    """The whole JSON object: events plus a note that the clock is simulated."""
    return {
        "traceEvents": chrome_trace_events(tasks, trace, network_events, links, clients),
        "displayTimeUnit": "ms",
        "otherData": {"clock": "simulated time (ts, dur in microseconds)", **(other or {})},
    }
