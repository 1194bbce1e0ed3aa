"""The network clock against measured TCP transfers: read a reference, replay it, score the errors.

A reference is a CSV with one row per flow of a measured case (the format of
`benchmarks/fidelity/ns3_reference.csv`, described in its README): equal flows of `size_bytes`
started together from one node to another over one link of `rate_mbps`, `one_way_delay_ms` and
`loss`, each on a new connection, with the TCP settings used (segment size, link framing, initial
window, socket buffers) and each flow's time from connect() to its last byte. Each case is replayed
through the real `FlowNetwork` with the same settings and per-message connections; a single flow is
compared by its time, several flows by the last one to finish (averaged over seeds where a case was
run with several).

An optional column `rate_steps` (`benchmarks/fidelity/ns3_rate_steps.csv`) makes the link's rate
change over time: `t:mbps` pairs separated by `;`, `t` in seconds from the first SYN (t = 0, when
every flow starts), the first at 0 with the row's `rate_mbps`. Such a case is replayed with the
link's capacity following the steps in both directions (latency and loss stay the row's); an empty
cell, or no such column, is a constant `rate_mbps`, replayed exactly as before.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import simpy

from nmoe_sim.clock import run_clock
from nmoe_sim.network.dynamics.links import LinkProfile
from nmoe_sim.network.dynamics.steps import Steps
from nmoe_sim.network.flows import BITS_PER_MEGABIT, FlowNetwork
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
RATE_STEPS_COLUMN = "rate_steps"  # optional
TRANSPORT_NAMES = ("fluid", "tcp")


RateSteps = tuple[tuple[float, float], ...]  # ((t_s, mbps), ...): a link's rate from t_s on


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
    # The link's rate over time, ((t_s, mbps), ...) from t = 0 with rate_mbps; None: constant.
    rate_steps: RateSteps | None = None

    @property
    def stepped(self) -> bool:
        """Whether the link's rate changes during the case (a single pair is a constant rate)."""
        return self.rate_steps is not None and len(self.rate_steps) > 1

    @property
    def profile(self) -> str:
        """The rates in the order the link takes them: `10>1`, `50>5>50`; `10` for a constant."""
        if self.rate_steps is None:
            return f"{self.rate_mbps:g}"
        return ">".join(f"{mbps:g}" for _, mbps in self.rate_steps)


def format_rate_steps(steps: RateSteps | None) -> str:
    """`rate_steps` as a reference writes it (`0:10;0.5:1`); empty for a constant rate."""
    if steps is None:
        return ""
    return ";".join(f"{t:g}:{mbps:g}" for t, mbps in steps)


def parse_rate_steps(text: str, rate_mbps: float, where: str = "rate_steps") -> RateSteps | None:
    """The `rate_steps` cell `text` as ((t_s, mbps), ...), or None for an empty cell (a constant
    `rate_mbps`). Strict: every pair is `t:mbps` with finite numbers, the times start at 0 and
    increase, the rates are positive and the first is `rate_mbps`; anything else raises a
    ReferenceError starting with `where` (file:line)."""
    text = text.strip()
    if not text:
        return None
    steps: list[tuple[float, float]] = []
    for n, pair in enumerate(text.split(";"), start=1):
        parts = pair.split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            t, mbps = float(parts[0]), float(parts[1])
        except ValueError:
            raise ReferenceError(
                f"{where}: rate_steps {text!r}: pair {n} ({pair!r}) is not t:mbps "
                "(two numbers separated by ':')"
            ) from None
        if not math.isfinite(t):
            raise ReferenceError(f"{where}: rate_steps {text!r}: time {parts[0]!r} is not finite")
        if not (math.isfinite(mbps) and mbps > 0):
            raise ReferenceError(
                f"{where}: rate_steps {text!r}: rate {parts[1]!r} at t = {t:g} s is not a "
                "positive finite number of Mbps"
            )
        if not steps and t != 0:
            raise ReferenceError(f"{where}: rate_steps {text!r}: the first time is {t:g}, not 0")
        if steps and not t > steps[-1][0]:
            raise ReferenceError(
                f"{where}: rate_steps {text!r}: times do not increase ({t:g} after "
                f"{steps[-1][0]:g})"
            )
        steps.append((t, mbps))
    if steps[0][1] != rate_mbps:
        raise ReferenceError(
            f"{where}: rate_steps {text!r} starts at {steps[0][1]:g} Mbps but rate_mbps is "
            f"{rate_mbps:g}: the first rate must be the row's rate_mbps"
        )
    return tuple(steps)


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
            has_steps = RATE_STEPS_COLUMN in (reader.fieldnames or [])
            # (the case's columns, its rate steps: part of its identity) -> seed -> time
            last: dict[tuple[tuple[str, ...], RateSteps | None], dict[str, float]]
            last = defaultdict(dict)
            for line, row in enumerate(reader, start=2):
                steps: RateSteps | None = None
                cell = (row.get(RATE_STEPS_COLUMN) or "") if has_steps else ""
                if cell.strip():
                    try:
                        rate = float(row["rate_mbps"])
                    except ValueError:
                        raise ReferenceError(f"{path}:{line}: rate_mbps is not a number") from None
                    steps = parse_rate_steps(cell, rate, f"{path}:{line}")
                key = (tuple(row[c] for c in CASE_COLUMNS), steps)
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
    for (columns, steps), runs in last.items():
        fields = dict(zip(CASE_COLUMNS, columns, strict=True))
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
                    rate_steps=steps,
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


class SharedSchedule:
    """Link dynamics where every directed link follows one schedule: the reference's single
    link, whose rate changes in both directions together."""

    def __init__(self, schedule: LinkProfile) -> None:
        self._schedule = schedule

    def schedule(self, u: str, v: str, attrs: Mapping[str, Any] | None = None) -> LinkProfile:
        return self._schedule

    def medium(self, u: str, v: str) -> None:
        return None  # a wired link shares nothing in time


def link_schedule(case: Case) -> LinkProfile | None:
    """The case's link as a schedule: capacity following `rate_steps`, the case's latency and
    loss throughout; None for a case without `rate_steps` (a fixed link)."""
    if case.rate_steps is None:
        return None
    return LinkProfile(
        case.rate_mbps * BITS_PER_MEGABIT,
        case.one_way_delay_ms / 1e3,
        case.loss,
        capacity=Steps(
            [t for t, _ in case.rate_steps],
            [mbps * BITS_PER_MEGABIT for _, mbps in case.rate_steps],
        ),
    )


def simulate(case: Case, transport: str) -> float:
    """The case replayed through a FlowNetwork: the time its last flow ends. With `rate_steps`
    the link's capacity follows them (both directions); flows start at t = 0, the first SYN."""
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
    schedule = link_schedule(case)
    net = FlowNetwork(
        topology,
        transport=transport_for(case, transport),
        dynamics=None if schedule is None else SharedSchedule(schedule),
    )
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
