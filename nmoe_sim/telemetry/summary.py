"""summary.json as typed models: the one place that knows its keys.

The engine builds a `RunSummary`; summary.json is its `to_dict()`; the CLI table, the sweep
table and the report read the same fields back through `RunSummary.from_dict`. Standard library
only (no torch), so all of them stay fast. Field order is the JSON key order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

# Marks a scalar figure that becomes a column of sweep.csv (one row per point and method).
SWEPT = {"sweep": True}


def sweep_figures(model: type) -> tuple[str, ...]:
    """The fields of `model` that sweep.csv carries, in field order."""
    return tuple(f.name for f in fields(model) if f.metadata.get("sweep"))


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    train: int
    test: int


@dataclass(frozen=True)
class StageFigures:
    """Bytes and simulated seconds of one stage, over the method's lineage."""

    bytes: int
    sim_time_s: float


@dataclass(frozen=True)
class UpdateCounts:
    """Client updates over the lineage: how many were applied, and dropped per reason."""

    applied: int
    dropped: dict[str, int]


@dataclass(frozen=True)
class PerClient:
    accuracy_global: list[float]
    accuracy_local: list[float]


@dataclass(frozen=True)
class InferenceSummary:
    """The serving stage of one method (its `inference` entry).

    `bytes_total` is the sum of the method's trace rows of stage "inference".
    `expert_utilisation[j]`: the share of the serving span (first arrival's clock start to the
    last answer) that expert j's host spent serving expert requests; `expert_requests[j]` how
    many it served. `deadline_misses`: queries with at least one asked expert left out.
    """

    queries: int
    accuracy: float = field(metadata=SWEPT)
    latency_mean_ms: float
    latency_p50_ms: float = field(metadata=SWEPT)
    latency_p95_ms: float = field(metadata=SWEPT)
    latency_p99_ms: float = field(metadata=SWEPT)
    bytes_total: int
    bytes_per_query: float = field(metadata=SWEPT)
    own_expert_only_fraction: float = field(metadata=SWEPT)
    expert_utilisation: list[float]
    expert_requests: list[int]
    deadline_misses: int = field(metadata=SWEPT)
    late_expert_answers: int
    t_start_s: float
    sim_time_s: float


@dataclass(frozen=True)
class MethodSummary:
    """One method's figures; a gating method's totals include its extractor pipeline's."""

    accuracy_global: float = field(metadata=SWEPT)
    accuracy_local: float = field(metadata=SWEPT)
    bytes_total: int = field(metadata=SWEPT)
    sim_time_s: float = field(metadata=SWEPT)
    wall_time_s: float = field(metadata=SWEPT)
    stages: dict[str, StageFigures]
    updates: UpdateCounts
    per_client: PerClient
    inference: InferenceSummary | None = None  # absent from the JSON where nothing was served
    # Handovers within the method's simulated span (its events.csv rows); absent where clients
    # do not move among base stations.
    handovers: int | None = field(default=None, metadata=SWEPT)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("inference", "handovers"):
            if out[key] is None:
                del out[key]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MethodSummary:
        inference = d.get("inference")
        nested = {
            "stages": {s: StageFigures(**v) for s, v in d["stages"].items()},
            "updates": UpdateCounts(**d["updates"]),
            "per_client": PerClient(**d["per_client"]),
            "inference": None if inference is None else InferenceSummary(**inference),
        }
        return cls(**{**d, **nested})


@dataclass(frozen=True)
class RunSummary:
    scenario: str
    seed: int
    dataset: DatasetInfo
    clients: int
    partition: dict[str, Any]  # the scenario's partition section, as configured
    wall_time_s: float
    methods: dict[str, MethodSummary]  # in the scenario's order

    def to_dict(self) -> dict[str, Any]:
        """summary.json's object."""
        out = asdict(self)
        out["methods"] = {name: m.to_dict() for name, m in self.methods.items()}
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSummary:
        """The model of a summary.json object; KeyError or TypeError when a key is missing or
        unknown."""
        nested = {
            "dataset": DatasetInfo(**d["dataset"]),
            "methods": {name: MethodSummary.from_dict(m) for name, m in d["methods"].items()},
        }
        return cls(**{**d, **nested})
