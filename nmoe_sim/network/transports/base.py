"""What every transport speaks: the hops of a path in, a `Message` (what a transfer costs) out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Hop:
    """One directed link of a path, as a transport sees it."""

    capacity_bps: float
    latency_s: float
    loss: float


@dataclass(frozen=True, slots=True)
class Route:
    """One direction of a path: its hops and their summed one-way latency."""

    hops: tuple[Hop, ...]
    latency_s: float


class Message:
    """What one transfer will cost, decided by the transport when it is sent.

    `delay_s`: time before its bits start to flow (handshake, propagation, store-and-forward);
    `wire_bits`: bits to move; `cap_bps`: the most its flow may take (inf: only the links bound
    it); `rtt_s`, `window_bits`, `max_window_bits`: its slow start (window_bits 0: none);
    `connection`: the transport's handle, given back in `close`; `bounded`: whether `cap_bps`
    follows the path's constants (a transport's `retime` sets it anew when they change);
    `open_window_bits`: the window it opens with, before any decision that it needs no slow start.
    """

    __slots__ = (
        "bounded",
        "cap_bps",
        "connection",
        "delay_s",
        "max_window_bits",
        "open_window_bits",
        "rtt_s",
        "window_bits",
        "wire_bits",
    )

    def __init__(
        self,
        delay_s: float,
        wire_bits: float,
        cap_bps: float = float("inf"),
        rtt_s: float = 0.0,
        window_bits: float = 0.0,
        max_window_bits: float = 0.0,
        connection: Any = None,
        bounded: bool = False,
        open_window_bits: float = 0.0,
    ) -> None:
        self.delay_s = delay_s
        self.wire_bits = wire_bits
        self.cap_bps = cap_bps
        self.rtt_s = rtt_s
        self.window_bits = window_bits
        self.max_window_bits = max_window_bits
        self.connection = connection
        self.bounded = bounded
        self.open_window_bits = open_window_bits


class Transport(Protocol):
    # Whether `path()`'s constants depend on the links' capacities (not only their latency and
    # loss): a capacity change then re-times the flows in flight.
    uses_capacity: bool

    def path(self, forward: Route, reverse: Callable[[], Route]) -> Any:
        """Per-path constants, computed once per (src, dst) and handed back to `open`;
        `reverse()` gives the way back (where acknowledgements travel)."""
        ...

    def open(self, path: Any, src: str, dst: str, size_bytes: int, now_s: float) -> Message:
        """A message of `size_bytes` payload bytes from src to dst, sent at `now_s`."""
        ...

    def close(self, message: Message, window_bits: float, now_s: float) -> None:
        """The message arrived at `now_s`; `window_bits` is its flow's window by then."""
        ...

    def retime(self, message: Message, path: Any) -> None:
        """A link of the message's path changed since it was opened: set its `cap_bps`,
        `rtt_s` and (if it has not started yet) `window_bits` from the path's new constants
        (`path`, as `path()` made them)."""
        ...
