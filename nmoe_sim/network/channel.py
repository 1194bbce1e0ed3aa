"""The one channel every simulated message crosses: it charges time and writes the trace row."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Protocol

import simpy

from nmoe_sim.network.payload import payload_bytes


@dataclass(frozen=True)
class TransferRecord:
    t_start_s: float
    t_end_s: float
    src: str
    dst: str
    kind: str
    stage: str
    round: int
    size_bytes: int


class TraceSink(Protocol):
    def record_transfer(self, record: TransferRecord) -> None: ...


class NetworkModel(Protocol):
    """How long a transfer takes; a SimPy generator so it can wait on shared links."""

    def carry(self, env: simpy.Environment, src: str, dst: str, size_bytes: int) -> Generator: ...


class IdealNetwork:
    """Zero latency, unlimited bandwidth: transfers are instantaneous but still counted."""

    def carry(self, env: simpy.Environment, src: str, dst: str, size_bytes: int) -> Generator:
        yield env.timeout(0)


class Channel:
    def __init__(self, env: simpy.Environment, network: NetworkModel, sink: TraceSink) -> None:
        self.env = env
        self.network = network
        self.sink = sink

    def send(
        self, src: str, dst: str, payload: Any, *, kind: str, stage: str, round: int
    ) -> simpy.Process:
        """Start a transfer; the returned process's value is the payload, delivered at arrival."""
        return self.env.process(self._transfer(src, dst, payload, kind, stage, round))

    def _transfer(
        self, src: str, dst: str, payload: Any, kind: str, stage: str, round: int
    ) -> Generator:
        size = payload_bytes(payload)
        start = self.env.now
        yield from self.network.carry(self.env, src, dst, size)
        self.sink.record_transfer(
            TransferRecord(start, self.env.now, src, dst, kind, stage, round, size)
        )
        return payload
