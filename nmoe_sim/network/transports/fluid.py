"""The idealised clock: a message waits its path's latency, then its payload bits flow at their
max-min share. No headers, handshakes or windows; kept for comparison and for users who want it."""

from __future__ import annotations

from collections.abc import Callable

from nmoe_sim.network.transports.base import Message, Route


class FluidTransport:
    uses_capacity = False  # its constants are the path's latency alone

    def path(self, forward: Route, reverse: Callable[[], Route]) -> float:
        return forward.latency_s

    def open(self, path: float, src: str, dst: str, size_bytes: int, now_s: float) -> Message:
        return Message(path, 8.0 * size_bytes)

    def close(self, message: Message, window_bits: float, now_s: float) -> None:
        pass

    def retime(self, message: Message, path: float) -> None:
        pass  # no bound and no round trip: only the links' shares move
