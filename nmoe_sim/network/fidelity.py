"""The network clock against measured TCP transfers: read a reference, replay it, score the errors.

A reference is a CSV with one row per flow of a measured case (the format of
`benchmarks/fidelity/ns3_reference.csv`, described in its README): equal flows of `size_bytes`
started together from one node to another over one link of `rate_mbps`, `one_way_delay_ms` and
`loss`, each on a new connection, with the TCP settings used (segment size, link framing, initial
window, socket buffers) and each flow's time from connect() to its last byte. Each case is replayed
through the real `FlowNetwork` with the same settings and per-message connections; a single flow is
compared by its time, several flows by the last one to finish (averaged over seeds where a case was
run with several).
"""

from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import simpy

from nmoe_sim.clock import run_clock
from nmoe_sim.network.flows import FlowNetwork
from nmoe_sim.network.topology import load_topology
from nmoe_sim.network.transports import FluidTransport, Transport
from nmoe_sim.network.transports.tcp import HEADER_BYTES, TcpTransport

CASE_COLUMNS = (
    "reference",
    "rate_mbps",
    "one_way_delay_ms",
    "loss",
    "size_bytes",
    "flows",
    "link_header_bytes",
    "send_buffer_bytes",
    "receive_buffer_bytes",
    "initial_window_segments",
    "segment_bytes",
)
REQUIRED_COLUMNS = (*CASE_COLUMNS, "seed", "flow", "t_connect_to_last_byte_s")
TRANSPORT_NAMES = ("fluid", "tcp")


class ReferenceError(ValueError):
    """A reference file that cannot be read; the message says what is wrong."""


@dataclass(frozen=True)
class Case:
    reference: str
    rate_mbps: float
    one_way_delay_ms: float
    loss: float
    size_bytes: int
    flows: int
    link_header_bytes: int
    send_buffer_bytes: int
    receive_buffer_bytes: int
    initial_window_segments: int
    segment_bytes: int
    measured_s: float  # one flow: its time; several: the last to finish (mean over seeds)


@dataclass(frozen=True)
class Scored:
    case: Case
    model_s: float

    @property
    def error(self) -> float:
        """Relative error of the model, signed: negative is too fast."""
        return (self.model_s - self.case.measured_s) / self.case.measured_s


def load_reference(path: str | Path) -> list[Case]:
    """The cases of a reference CSV, in the order they first appear."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ReferenceError(
                    f"{path}: missing column(s) {', '.join(missing)}; a reference needs "
                    f"{', '.join(REQUIRED_COLUMNS)}"
                )
            # case -> seed -> time of the last flow to finish
            last: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
            for line, row in enumerate(reader, start=2):
                key = tuple(row[c] for c in CASE_COLUMNS)
                try:
                    t = float(row["t_connect_to_last_byte_s"])
                except ValueError:
                    raise ReferenceError(
                        f"{path}:{line}: t_connect_to_last_byte_s is not a number"
                    ) from None
                runs = last[key]
                runs[row["seed"]] = max(t, runs.get(row["seed"], -math.inf))
    except (OSError, UnicodeDecodeError) as err:
        raise ReferenceError(f"cannot read reference {path}: {err}") from None
    cases = []
    for key, runs in last.items():
        fields = dict(zip(CASE_COLUMNS, key, strict=True))
        try:
            cases.append(
                Case(
                    reference=fields["reference"],
                    rate_mbps=float(fields["rate_mbps"]),
                    one_way_delay_ms=float(fields["one_way_delay_ms"]),
                    loss=float(fields["loss"]),
                    size_bytes=int(fields["size_bytes"]),
                    flows=int(fields["flows"]),
                    link_header_bytes=int(fields["link_header_bytes"]),
                    send_buffer_bytes=int(fields["send_buffer_bytes"]),
                    receive_buffer_bytes=int(fields["receive_buffer_bytes"]),
                    initial_window_segments=int(fields["initial_window_segments"]),
                    segment_bytes=int(fields["segment_bytes"]),
                    measured_s=statistics.fmean(runs.values()),
                )
            )
        except ValueError as err:
            raise ReferenceError(
                f"{path}: a case with unreadable settings {fields}: {err}"
            ) from None
    if not cases:
        raise ReferenceError(f"{path}: no cases (the file has a header but no rows)")
    return cases


def transport_for(case: Case, name: str) -> Transport:
    """The transport `name` set up as the reference was: its segment size, framing, initial
    window and buffers, a new connection per flow."""
    if name == "fluid":
        return FluidTransport()
    if name == "tcp":
        return TcpTransport(
            mtu_bytes=case.segment_bytes + HEADER_BYTES,
            header_bytes=HEADER_BYTES,
            link_header_bytes=case.link_header_bytes,
            initial_window_segments=case.initial_window_segments,
            max_window_bytes=min(case.send_buffer_bytes, case.receive_buffer_bytes),
            connections="per_message",
        )
    raise ValueError(f"unknown transport {name!r}; choose one of {', '.join(TRANSPORT_NAMES)}")


def simulate(case: Case, transport: str) -> float:
    """The case replayed through a FlowNetwork: the time its last flow ends."""
    topology = load_topology(
        {
            "nodes": [
                {"name": "sender", "role": "cloud", "device_class": "host"},
                {"name": "receiver", "role": "client", "device_class": "host"},
            ],
            "links": [
                {
                    "a": "sender",
                    "b": "receiver",
                    "bandwidth_mbps": case.rate_mbps,
                    "latency_ms": case.one_way_delay_ms,
                    "loss_rate": case.loss,
                }
            ],
        }
    )
    env = simpy.Environment()
    net = FlowNetwork(topology, transport=transport_for(case, transport))
    ends: list[float] = []

    def flow() -> Generator[Any, Any, None]:
        yield from net.carry(env, "sender", "receiver", case.size_bytes)
        ends.append(env.now)

    for _ in range(case.flows):
        env.process(flow())
    run_clock(env)
    return max(ends)


def score(cases: Iterable[Case], transport: str) -> list[Scored]:
    return [Scored(case, simulate(case, transport)) for case in cases]


def summary(scored: list[Scored]) -> dict[str, float]:
    """`cases`; `within_5pct`: the share of cases within 5 %; `median_abs_err` and `worst_err`:
    the median and the largest absolute relative error (fractions, 0.05 = 5 %)."""
    errors = [abs(s.error) for s in scored]
    return {
        "cases": len(errors),
        "within_5pct": sum(e <= 0.05 for e in errors) / len(errors),
        "median_abs_err": statistics.median(errors),
        "worst_err": max(errors),
    }
