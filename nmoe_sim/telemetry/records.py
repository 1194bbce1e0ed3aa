"""In-memory records of a run: every transfer and every evaluation, per method."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from nmoe_sim.telemetry.schema import (
    EventRecord,
    MetricRecord,
    QueryRecord,
    RoundRecord,
    TaskRecord,
    TransferRecord,
    UpdateRecord,
    row,
)
from nmoe_sim.telemetry.summary import StageFigures, UpdateCounts


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

    def update_counts(self) -> UpdateCounts:
        """Client updates over the lineage: how many were applied, and dropped per reason."""
        dropped: dict[str, int] = defaultdict(int)
        applied = 0
        for log in self.lineage():
            for u in log.updates:
                if u.status == "applied":
                    applied += 1
                else:
                    dropped[u.reason] += 1
        return UpdateCounts(applied=applied, dropped=dict(sorted(dropped.items())))

    def stages(self) -> dict[str, StageFigures]:
        """Per-stage bytes and simulated time, over the whole lineage."""
        spans: dict[str, float] = {}
        sizes: dict[str, int] = defaultdict(int)
        for log in self.lineage():
            for r in log.transfers:
                sizes[r.stage] += r.size_bytes
            for stage, (start, end) in log.stage_spans.items():
                spans[stage] = end - start
        # Stages with a span first (in lineage order), then stages that only sent bytes.
        order = [*spans, *(s for s in sizes if s not in spans)]
        return {s: StageFigures(bytes=sizes.get(s, 0), sim_time_s=spans.get(s, 0.0)) for s in order}


class Recorder:
    """Every record of a run, by method; its `*_rows` are the run's CSVs in their row order."""

    def __init__(self) -> None:
        self.logs: dict[str, MethodLog] = {}
        # The serving stage of a method: its own log (same method name in the trace, stage
        # "inference"), so a method's training totals (bytes_total, stages) stay training only.
        self.serving_logs: dict[str, MethodLog] = {}
        self.metrics: list[tuple[str, MetricRecord]] = []  # in the order they were taken
        self.queries: list[tuple[str, QueryRecord]] = []
        self.events: dict[str, list[EventRecord]] | None = None  # None: no network events kept

    def method(self, name: str, parent: MethodLog | None = None) -> MethodLog:
        log = MethodLog(name, parent)
        self.logs[name] = log
        return log

    def serving(self, name: str) -> MethodLog:
        log = MethodLog(name)
        self.serving_logs[name] = log
        return log

    def record_queries(self, method: str, records: list[QueryRecord]) -> None:
        self.queries += [(method, r) for r in records]

    def record_events(self, method: str, records: list[EventRecord]) -> None:
        """The network's events within a method's span (written once all methods ran)."""
        if self.events is None:
            self.events = {}
        self.events[method] = records

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
        record = MetricRecord(
            stage=stage,
            round=round,
            sim_time_s=sim_time_s,
            wall_time_s=log.wall_elapsed_s(),
            accuracy=accuracy,
            loss=loss,
            bytes_cum=log.bytes_total,
        )
        self.metrics.append((log.name, record))

    def metric_rows(self) -> list[dict[str, Any]]:
        return [row(method, r) for method, r in self.metrics]

    def trace_rows(self) -> list[dict[str, Any]]:
        out = [row(log.name, r) for log in self._all_logs() for r in log.transfers]
        out.sort(key=lambda r: (r["method"], r["t_start_s"], r["t_end_s"]))
        return out

    def update_rows(self) -> list[dict[str, Any]]:
        """One row per dispatched client update. Sorted by method, stage, dispatch time, client
        and round; the sort is stable, so any remaining ties keep the order they were recorded."""
        out = [row(log.name, r) for log in self.logs.values() for r in log.updates]
        out.sort(
            key=lambda r: (
                r["method"],
                r["stage"],
                r["t_dispatch_s"],
                r["client"],
                r["round"],
            )
        )
        return out

    def task_rows(self) -> list[dict[str, Any]]:
        out = [row(log.name, r) for log in self._all_logs() for r in log.tasks]
        out.sort(key=lambda r: (r["method"], r["t_start_s"], r["node"], r["t_end_s"]))
        return out

    def inference_rows(self) -> list[dict[str, Any]]:
        """One row per served query, by method then query id (arrival order)."""
        out = [row(method, r) for method, r in self.queries]
        return sorted(out, key=lambda r: (r["method"], r["query"]))

    def round_rows(self) -> list[dict[str, Any]]:
        out = [row(log.name, r) for log in self.logs.values() for r in log.rounds]
        out.sort(key=lambda r: (r["method"], r["stage"], r["t_start_s"], r["round"]))
        return out

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """The run's CSVs (schema.RUN_TABLES names) and their rows; inference.csv only where a
        method served queries."""
        out = {
            "metrics.csv": self.metric_rows(),
            "trace.csv": self.trace_rows(),
            "updates.csv": self.update_rows(),
            "rounds.csv": self.round_rows(),
            "tasks.csv": self.task_rows(),
        }
        if self.queries:
            out["inference.csv"] = self.inference_rows()
        if self.events is not None:
            out["events.csv"] = [
                row(method, r) for method in sorted(self.events) for r in self.events[method]
            ]
        return out
