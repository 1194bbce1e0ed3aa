"""The records a run writes, one dataclass per CSV row, and the columns derived from them.

Standard library only, so the CLI, the report and the sweep table can know the run's files
without loading torch. Every CSV of a run is `method` followed by its record's fields, in field
order: a column is added or renamed here, in one place.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from typing import Any, Literal


@dataclass(frozen=True)
class TransferRecord:
    """One message over the channel (trace.csv). `round` is the stage's round or model version;
    in the serving stage (stage "inference") it is the id of the query the message serves."""

    t_start_s: float
    t_end_s: float
    src: str
    dst: str
    kind: str
    stage: str
    round: int
    size_bytes: int
    path: str = ""
    staleness: int | None = None


@dataclass(frozen=True)
class UpdateRecord:
    """The fate of one dispatched client update (updates.csv): every dispatch ends in exactly one
    record.

    `round` is the synchronous round, or for asynchronous drivers the server model version the
    client started from. `staleness` counts server versions between dispatch and arrival (None
    when nothing arrived). `reason` is empty when applied, else e.g. "late", "over_selected",
    "stale" or "dropout".
    """

    client: int
    stage: str
    round: int
    t_dispatch_s: float
    t_arrival_s: float | None
    staleness: int | None
    status: Literal["applied", "dropped"]
    reason: str = ""


@dataclass(frozen=True)
class RoundRecord:
    """How one synchronous round ended (rounds.csv): `closed_by` is "all" (every selected client
    answered), "quorum" (the first K uploads were in) or "deadline". `applied == 0` means the
    global model was left unchanged that round."""

    stage: str
    round: int
    t_start_s: float
    t_end_s: float
    selected: int
    applied: int
    closed_by: str


@dataclass(frozen=True)
class TaskRecord:
    """One piece of compute on a simulated device (tasks.csv): its simulated span beside the host
    seconds it really took. `status` is "done" or why its result was lost ("dropout", "offline",
    "host_lost"); `host_wall_s` is NaN when the host died before answering."""

    node: str
    task: str
    t_start_s: float
    t_end_s: float
    host_wall_s: float
    status: str


@dataclass(frozen=True)
class MetricRecord:
    """One evaluation (metrics.csv); `bytes_cum` is the method's bytes sent so far."""

    stage: str
    round: int
    sim_time_s: float
    wall_time_s: float
    accuracy: float | None
    loss: float | None
    bytes_cum: int


@dataclass(frozen=True)
class QueryRecord:
    """One served query (inference.csv). `experts` were asked, `answered` made the mixture
    (both `;`-joined, best first); `bytes` is what the query put on the network."""

    query: int
    client: int
    sample: int
    t_arrival_s: float
    t_done_s: float
    latency_ms: float
    experts: str
    answered: str
    bytes: int
    correct: bool
    own_only: bool
    deadline_missed: bool


@dataclass(frozen=True)
class EventRecord:
    """Something the network did at a time (events.csv), within the method's simulated span.
    `kind` "handover": client `node` moved from base station `source` to `target`."""

    t_s: float
    kind: str
    node: str
    source: str
    target: str


@dataclass(frozen=True)
class LinkStateRecord:
    """A changing link's state from `t_s` on (links.csv, one table for the run: every method
    meets the same links at the same simulated times). `link` is "u>v"; a client's access link
    is listed while the client is attached to that base station. The state holds for the bits
    that enter the link from `t_s` on (flows transmitting meet it one link latency later)."""

    link: str
    t_s: float
    bandwidth_mbps: float
    latency_ms: float
    loss: float


@dataclass(frozen=True)
class PositionRecord:
    """Where a node is (positions.csv, one table for the run, where the layout is modelled):
    base stations once at time 0 (`role` "station"), each client at the knots of its track
    (it moves in a straight line from one row to its next)."""

    node: str
    role: str
    t_s: float
    x_m: float
    y_m: float


# Every CSV of a run with its row type: the writer writes these, the report reads them.
RUN_TABLES: dict[str, type] = {
    "metrics.csv": MetricRecord,
    "trace.csv": TransferRecord,
    "tasks.csv": TaskRecord,
    "updates.csv": UpdateRecord,
    "rounds.csv": RoundRecord,
    "inference.csv": QueryRecord,  # only where a method served queries
    "events.csv": EventRecord,  # only where clients move among base stations
}


def columns(record_type: type) -> tuple[str, ...]:
    """A CSV's header: the method, then the record's fields in order."""
    return ("method", *_field_names(record_type))


@functools.cache
def _field_names(record_type: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(record_type))


def row(method: str, record: Any) -> dict[str, Any]:
    """A record of one method as a CSV row, keyed by `columns(type(record))`. Records hold
    plain values only, so a shallow read of the fields is all `dataclasses.asdict` would do,
    minus its recursive copy (which dominated writing 100,000-row traces)."""
    out: dict[str, Any] = {"method": method}
    record_type: type = type(record)
    for name in _field_names(record_type):
        out[name] = getattr(record, name)
    return out
