"""The one channel every simulated message crosses: it charges time and writes the trace row."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Protocol

import simpy

from nmoe_sim.network.payload import payload_bytes
from nmoe_sim.telemetry.schema import TransferRecord


class TraceSink(Protocol):
    def record_transfer(self, record: TransferRecord) -> None: ...


class NetworkModel(Protocol):
    """How long a transfer takes: a SimPy generator that returns the path it took."""

    def carry(
        self, env: simpy.Environment, src: str, dst: str, size_bytes: int
    ) -> Generator[Any, Any, tuple[str, ...]]: ...


class IdealNetwork:
    """Zero latency, unlimited bandwidth: transfers are instantaneous but still counted."""

    def carry(
        self, env: simpy.Environment, src: str, dst: str, size_bytes: int
    ) -> Generator[Any, Any, tuple[str, ...]]:
        yield env.timeout(0)
        return (src, dst)


class Channel:
    def __init__(self, env: simpy.Environment, network: NetworkModel, sink: TraceSink) -> None:
        self.env = env
        self.network = network
        self.sink = sink

    def send(
        self,
        src: str,
        dst: str,
        payload: Any,
        *,
        kind: str,
        stage: str,
        round: int,
        staleness: Callable[[], int] | None = None,
    ) -> simpy.Process:
        """Start a transfer; the returned process's value is the payload, delivered at arrival.

        `staleness`, where it applies, is asked on arrival (e.g. server version now minus the
        version the update started from) and written into the trace row.
        """
        return self.env.process(self._transfer(src, dst, payload, kind, stage, round, staleness))

    def _transfer(
        self,
        src: str,
        dst: str,
        payload: Any,
        kind: str,
        stage: str,
        round: int,
        staleness: Callable[[], int] | None,
    ) -> Generator[Any, Any, Any]:
        size = payload_bytes(payload)
        start = self.env.now
        path = yield from self.network.carry(self.env, src, dst, size)
        self.sink.record_transfer(
            TransferRecord(
                start,
                self.env.now,
                src,
                dst,
                kind,
                stage,
                round,
                size,
                ">".join(path),
                None if staleness is None else staleness(),
            )
        )
        return payload
