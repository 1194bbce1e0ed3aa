"""In-memory records of a run: every transfer and every evaluation, per method."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Literal

from nmoe_sim.network.channel import TransferRecord

TRACE_COLUMNS = (
    "method",
    "t_start_s",
    "t_end_s",
    "src",
    "dst",
    "kind",
    "stage",
    "round",
    "size_bytes",
    "path",
    "staleness",
)
METRIC_COLUMNS = (
    "method",
    "stage",
    "round",
    "sim_time_s",
    "wall_time_s",
    "accuracy",
    "loss",
    "bytes_cum",
)
UPDATE_COLUMNS = (
    "method",
    "client",
    "stage",
    "round",
    "t_dispatch_s",
    "t_arrival_s",
    "staleness",
    "status",
    "reason",
)
TASK_COLUMNS = (
    "method",
    "node",
    "task",
    "t_start_s",
    "t_end_s",
    "host_wall_s",
    "status",
)
INFERENCE_COLUMNS = (
    "method",
    "query",
    "client",
    "sample",
    "t_arrival_s",
    "t_done_s",
    "latency_ms",
    "experts",
    "answered",
    "bytes",
    "correct",
    "own_only",
    "deadline_missed",
)
ROUND_COLUMNS = (
    "method",
    "stage",
    "round",
    "t_start_s",
    "t_end_s",
    "selected",
    "applied",
    "closed_by",
)


@dataclass(frozen=True)
class UpdateRecord:
    """The fate of one dispatched client update: every dispatch ends in exactly one record.

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
    """How one synchronous round ended: `closed_by` is "all" (every selected client answered),
    "quorum" (the first K uploads were in) or "deadline". `applied == 0` means the global model
    was left unchanged that round."""

    stage: str
    round: int
    t_start_s: float
    t_end_s: float
    selected: int
    applied: int
    closed_by: str


@dataclass(frozen=True)
class TaskRecord:
    """One piece of compute on a simulated device: its simulated span beside the host seconds
    it really took. `status` is "done" or why its result was lost ("dropout", "offline",
    "host_lost"); `host_wall_s` is NaN when the host died before answering."""

    node: str
    task: str
    t_start_s: float
    t_end_s: float
    host_wall_s: float
    status: str


@dataclass
class MethodLog:
    """The trace sink of one pipeline. NMoE methods branch from their extractor's pipeline
    ("nmoe/fedsc" -> "nmoe/fedsc/fedgate"): a branch's totals include its parent's rows."""

    name: str
    parent: MethodLog | None = None
    transfers: list[TransferRecord] = field(default_factory=list)
    updates: list[UpdateRecord] = field(default_factory=list)
    rounds: list[RoundRecord] = field(default_factory=list)
    tasks: list[TaskRecord] = field(default_factory=list)
    stage_spans: dict[str, tuple[float, float]] = field(default_factory=dict)
    wall_start: float = field(default_factory=time.perf_counter)
    wall_time_s: float = 0.0
    sim_time_s: float = 0.0

    def record_transfer(self, record: TransferRecord) -> None:
        self.transfers.append(record)

    def record_update(self, record: UpdateRecord) -> None:
        self.updates.append(record)

    def record_round(self, record: RoundRecord) -> None:
        self.rounds.append(record)

    def record_task(self, record: TaskRecord) -> None:
        self.tasks.append(record)

    def lineage(self) -> list[MethodLog]:
        chain = [self]
        while chain[-1].parent is not None:
            chain.append(chain[-1].parent)
        return chain[::-1]

    @property
    def bytes_total(self) -> int:
        return sum(r.size_bytes for log in self.lineage() for r in log.transfers)

    def wall_elapsed_s(self) -> float:
        own = time.perf_counter() - self.wall_start
        return own + (self.parent.wall_time_s if self.parent else 0.0)

    def mark_stage(self, stage: str, start_s: float, end_s: float) -> None:
        self.stage_spans[stage] = (start_s, end_s)

    def finish(self, sim_time_s: float) -> None:
        self.sim_time_s = sim_time_s
        self.wall_time_s = self.wall_elapsed_s()

    def update_counts(self) -> dict[str, object]:
        """Client updates over the lineage: how many were applied, and dropped per reason."""
        dropped: dict[str, int] = defaultdict(int)
        applied = 0
        for log in self.lineage():
            for u in log.updates:
                if u.status == "applied":
                    applied += 1
                else:
                    dropped[u.reason] += 1
        return {"applied": applied, "dropped": dict(sorted(dropped.items()))}

    def stages(self) -> dict[str, dict[str, float]]:
        """Per-stage bytes and simulated time, over the whole lineage."""
        out: dict[str, dict[str, float]] = {}
        sizes: dict[str, int] = defaultdict(int)
        for log in self.lineage():
            for r in log.transfers:
                sizes[r.stage] += r.size_bytes
            for stage, (start, end) in log.stage_spans.items():
                out[stage] = {"bytes": 0, "sim_time_s": end - start}
        for stage, size in sizes.items():
            out.setdefault(stage, {"bytes": 0, "sim_time_s": 0.0})["bytes"] = size
        return out


class Recorder:
    def __init__(self) -> None:
        self.logs: dict[str, MethodLog] = {}
        # The serving stage of a method: its own log (same method name in the trace, stage
        # "inference"), so a method's training totals (bytes_total, stages) stay training only.
        self.serving_logs: dict[str, MethodLog] = {}
        self.metrics: list[dict[str, object]] = []
        self.inference: list[dict[str, object]] = []

    def method(self, name: str, parent: MethodLog | None = None) -> MethodLog:
        log = MethodLog(name, parent)
        self.logs[name] = log
        return log

    def serving(self, name: str) -> MethodLog:
        log = MethodLog(name)
        self.serving_logs[name] = log
        return log

    def record_queries(self, method: str, rows: list[dict[str, object]]) -> None:
        self.inference += [{"method": method, **row} for row in rows]

    def _all_logs(self) -> list[MethodLog]:
        return [*self.logs.values(), *self.serving_logs.values()]

    def metric(
        self,
        log: MethodLog,
        stage: str,
        round: int,
        sim_time_s: float,
        accuracy: float | None,
        loss: float | None = None,
    ) -> None:
        self.metrics.append(
            {
                "method": log.name,
                "stage": stage,
                "round": round,
                "sim_time_s": sim_time_s,
                "wall_time_s": log.wall_elapsed_s(),
                "accuracy": accuracy,
                "loss": loss,
                "bytes_cum": log.bytes_total,
            }
        )

    def trace_rows(self) -> list[dict[str, object]]:
        rows = [
            {"method": log.name, **asdict(r)} for log in self._all_logs() for r in log.transfers
        ]
        rows.sort(key=lambda row: (row["method"], row["t_start_s"], row["t_end_s"]))
        return rows

    def update_rows(self) -> list[dict[str, object]]:
        """One row per dispatched client update. Sorted by method, stage, dispatch time, client
        and round; the sort is stable, so any remaining ties keep the order they were recorded."""
        rows = [
            {"method": log.name, **asdict(r)} for log in self.logs.values() for r in log.updates
        ]
        rows.sort(
            key=lambda row: (
                row["method"],
                row["stage"],
                row["t_dispatch_s"],
                row["client"],
                row["round"],
            )
        )
        return rows

    def task_rows(self) -> list[dict[str, object]]:
        rows = [{"method": log.name, **asdict(r)} for log in self._all_logs() for r in log.tasks]
        rows.sort(key=lambda row: (row["method"], row["t_start_s"], row["node"], row["t_end_s"]))
        return rows

    def inference_rows(self) -> list[dict[str, object]]:
        """One row per served query, by method then query id (arrival order)."""
        return sorted(self.inference, key=lambda row: (row["method"], row["query"]))

    def round_rows(self) -> list[dict[str, object]]:
        rows = [{"method": log.name, **asdict(r)} for log in self.logs.values() for r in log.rounds]
        rows.sort(key=lambda row: (row["method"], row["stage"], row["t_start_s"], row["round"]))
        return rows
