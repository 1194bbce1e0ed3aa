"""TCP at flow level: the mechanisms that make real transfers slower than bits over bandwidth.

For a message of S payload bytes from src to dst (MSS = mtu - header bytes):

- **Wire bytes.** It travels in ceil(S / MSS) segments, each carrying `header_bytes` of IP + TCP
  headers (52: 20 + 20 + 12 of timestamps) and `link_header_bytes` of link framing (14 for
  Ethernet as Linux counts it on a qdisc; 2 for PPP): links carry those bytes, not S.
- **Handshake.** A new connection first exchanges SYN and SYN-ACK: one round trip of propagation
  plus the two header-only packets' serialization on every hop; the third ACK goes out just ahead
  of the data. `connections: persistent` (default) opens one connection per node pair on first use
  and keeps it, as gRPC does; `per_message` opens one per message.
- **Propagation and store-and-forward.** The first bits arrive after the path's one-way latency
  plus one packet's serialization on every hop but the slowest (whose time the flow itself counts).
- **Slow start.** The flow's window starts at `initial_window_segments` packets and doubles every
  round trip R (propagation both ways plus a data packet's and an ACK's serialization) until it
  carries the flow's share of the path: `nmoe_sim.network.ramp` holds that closed form.
- **Window bound.** The window never exceeds `max_window_bytes` (Linux's largest receive buffer,
  6 MiB), so the flow never exceeds max_window / R.
- **Loss.** On a path losing a fraction p of packets (1 - prod(1 - loss) over its links) the flow
  is held to the steady-state throughput of Padhye, Firoiu, Towsley and Kurose (SIGCOMM 1998):

      B = 1 / (R sqrt(2bp/3) + T0 min(1, 3 sqrt(3bp/8)) p (1 + 32 p^2))   packets/s

  of which a fraction 1 - p are new data. Padhye's rather than Mathis's `sqrt(3/2) / (R sqrt(p))`
  because it keeps the retransmission timeouts that dominate once losses are more than rare.
  b = 1: Linux grows its window by acknowledged segments, not by ACKs, so delayed ACKs do not slow
  its growth. T0 = R + `min_rto_ms`: Linux's timeout is the smoothed RTT plus a variance term
  floored at its minimum RTO (200 ms).
- **Idle restart.** A persistent connection remembers its window between messages; after an idle
  time longer than its RTO (R + min RTO) the window is halved for every further RTO elapsed, down
  to the initial window, as Linux does with `tcp_slow_start_after_idle` (its default).
- **One window.** A message that fits its sender's window goes out in one burst at the links'
  pace: neither the window nor the steady-state loss bound holds it back.

Not modelled: queueing delay (links have no buffer, so a burst never waits behind another and
never overflows), retransmission timeouts of short flows, Nagle's algorithm and delayed ACKs, the
congestion-avoidance shape of each algorithm (Cubic, Reno) beyond the loss bound, and several
messages in flight on one connection sharing a window (each flow keeps its own).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from nmoe_sim.network.transports.base import Message, Route

# Linux's defaults (the `tcp` section of a scenario documents and overrides them).
MTU_BYTES = 1500
HEADER_BYTES = 52  # IPv4 20 + TCP 20 + timestamps option 12
LINK_HEADER_BYTES = 14  # Ethernet II
INITIAL_WINDOW_SEGMENTS = 10  # RFC 6928, Linux since 2.6.39
MAX_WINDOW_BYTES = 6 * 1024 * 1024  # net.ipv4.tcp_rmem max
MIN_RTO_MS = 200.0  # TCP_RTO_MIN
ACKED_PER_ACK = 1  # Padhye's b (see the module docstring)

Connections = Literal["persistent", "per_message"]


def padhye_packets_per_s(p: float, rtt_s: float, t0_s: float, b: float = ACKED_PER_ACK) -> float:
    """Steady-state send rate of a TCP flow losing a fraction p of its packets (Padhye et al.,
    1998, the approximate model), in packets per second; inf without loss."""
    if p <= 0.0:
        return math.inf
    timeouts = t0_s * min(1.0, 3.0 * math.sqrt(3.0 * b * p / 8.0)) * p * (1.0 + 32.0 * p * p)
    return 1.0 / (rtt_s * math.sqrt(2.0 * b * p / 3.0) + timeouts)


@dataclass(frozen=True, slots=True)
class TcpPath:
    """The per-path constants of the TCP model (bits, seconds)."""

    latency_s: float  # one way, propagation
    rtt_s: float  # a data packet there and its ACK back, on an idle path
    handshake_s: float  # SYN there, SYN-ACK back
    first_packet_s_per_bit: float  # store-and-forward on every hop but the slowest, per bit
    cap_bps: float  # window and loss bounds
    max_rate_bps: float  # the most the flow can ever get: its cap or the slowest hop
    rto_s: float


class _Connection:
    """A persistent connection between two nodes: when its handshake is (or will be) done."""

    __slots__ = ("established_s",)

    def __init__(self, established_s: float) -> None:
        self.established_s = established_s


class _Sender:
    """One direction of a persistent connection: the sender's window and when it went idle."""

    __slots__ = ("connection", "idle_since_s", "in_flight", "window_bits")

    def __init__(self, connection: _Connection, window_bits: float, now_s: float) -> None:
        self.connection = connection
        self.window_bits = window_bits
        self.idle_since_s = now_s
        self.in_flight = 0


class TcpTransport:
    """Wire overhead, handshakes, slow start, window and loss bounds; see the module docstring."""

    uses_capacity = True  # round trips and bounds count serialization on each hop

    def __init__(
        self,
        *,
        mtu_bytes: int = MTU_BYTES,
        header_bytes: int = HEADER_BYTES,
        link_header_bytes: int = LINK_HEADER_BYTES,
        initial_window_segments: int = INITIAL_WINDOW_SEGMENTS,
        max_window_bytes: int = MAX_WINDOW_BYTES,
        min_rto_ms: float = MIN_RTO_MS,
        connections: Connections = "persistent",
    ) -> None:
        if not 0 <= header_bytes < mtu_bytes:
            raise ValueError(f"header_bytes ({header_bytes}) must be below mtu_bytes ({mtu_bytes})")
        if connections not in ("persistent", "per_message"):
            raise ValueError(f"connections must be persistent or per_message, got {connections!r}")
        self.mss_bytes = mtu_bytes - header_bytes
        self.overhead_bytes = header_bytes + link_header_bytes  # per segment
        self.packet_bits = 8.0 * (mtu_bytes + link_header_bytes)
        self.control_bits = 8.0 * self.overhead_bytes  # SYN, SYN-ACK, ACK: headers only
        self.initial_window_bits = initial_window_segments * self.packet_bits
        self.max_window_bits = max(
            self.initial_window_bits, max_window_bytes / self.mss_bytes * self.packet_bits
        )
        self.min_rto_s = min_rto_ms / 1e3
        self.persistent = connections == "persistent"
        # Persistent connections, one per node pair for both directions, and each direction's
        # sender state.
        self._connections: dict[tuple[str, str], _Connection] = {}
        self._senders: dict[tuple[str, str], _Sender] = {}

    # ------------------------------------------------------------------ per path

    def path(self, forward: Route, reverse: Callable[[], Route]) -> TcpPath:
        back = reverse()
        per_bit_fwd = sum(1.0 / h.capacity_bps for h in forward.hops)
        per_bit_back = sum(1.0 / h.capacity_bps for h in back.hops)
        bottleneck = min(h.capacity_bps for h in forward.hops)
        propagation = forward.latency_s + back.latency_s
        rtt = propagation + self.packet_bits * per_bit_fwd + self.control_bits * per_bit_back
        handshake = propagation + self.control_bits * (per_bit_fwd + per_bit_back)
        delivered = 1.0
        for h in forward.hops:
            delivered *= 1.0 - h.loss
        loss = 1.0 - delivered
        rto = rtt + self.min_rto_s
        loss_cap = padhye_packets_per_s(loss, rtt, rto) * (1.0 - loss) * self.packet_bits
        cap = min(self.max_window_bits / rtt, loss_cap)
        if cap >= bottleneck:
            cap = math.inf  # it never binds; flows of paths with other RTTs can share a class
        return TcpPath(
            latency_s=forward.latency_s,
            rtt_s=rtt,
            handshake_s=handshake,
            first_packet_s_per_bit=per_bit_fwd - 1.0 / bottleneck,
            cap_bps=cap,
            max_rate_bps=min(cap, bottleneck),
            rto_s=rto,
        )

    # ------------------------------------------------------------------ per message

    def open(self, path: TcpPath, src: str, dst: str, size_bytes: int, now_s: float) -> Message:
        segments = -(-size_bytes // self.mss_bytes)
        wire_bits = 8.0 * (size_bytes + segments * self.overhead_bytes)
        wait_s = 0.0
        window = self.initial_window_bits
        sender = None
        if self.persistent:
            sender = self._senders.get((src, dst))
            if sender is None:
                pair = (src, dst) if src < dst else (dst, src)
                connection = self._connections.get(pair)
                if connection is None:  # open it: a handshake, the third ACK ahead of the data
                    connection = self._connections[pair] = _Connection(now_s + path.handshake_s)
                    wire_bits += self.control_bits
                sender = self._senders[(src, dst)] = _Sender(connection, window, now_s)
            else:
                window = sender.window_bits
                idle = now_s - sender.idle_since_s
                if sender.in_flight == 0 and idle > path.rto_s:
                    # Linux's tcp_cwnd_restart: a sender idle for more than one RTO halves its
                    # window for every RTO elapsed beyond the first, down to the initial window.
                    halvings = min(64, math.ceil(idle / path.rto_s) - 1)
                    window = max(self.initial_window_bits, window / 2.0**halvings)
                    sender.window_bits = window
            established = sender.connection.established_s
            if established > now_s:  # the handshake is under way: wait for it
                wait_s = established - now_s
            sender.in_flight += 1
        else:
            wait_s = path.handshake_s
            wire_bits += self.control_bits
        first_packet = wire_bits if wire_bits < self.packet_bits else self.packet_bits
        delay = wait_s + path.latency_s + first_packet * path.first_packet_s_per_bit
        cap = path.cap_bps
        bounded = True
        opening = window
        if wire_bits <= window:
            # One burst at the links' pace: neither its window nor the steady-state loss bound
            # holds it back.
            window, cap, bounded = 0.0, math.inf, False
        elif window >= path.max_rate_bps * path.rtt_s:
            window = 0.0  # its window already fills the path: no slow start
        return Message(
            delay,
            wire_bits,
            cap,
            path.rtt_s,
            window,
            self.max_window_bits,
            sender,
            bounded,
            opening,
        )

    def retime(self, message: Message, path: TcpPath) -> None:
        """The path changed since the message was opened: its window and loss bounds follow the
        new round trip and loss (a one-window burst stays unbounded), and, read when it starts,
        whether its window already fills the path."""
        message.rtt_s = path.rtt_s
        if message.bounded:
            message.cap_bps = path.cap_bps
            opening = message.open_window_bits
            message.window_bits = 0.0 if opening >= path.max_rate_bps * path.rtt_s else opening

    def close(self, message: Message, window_bits: float, now_s: float) -> None:
        sender = message.connection
        if sender is not None:
            if window_bits > sender.window_bits:
                sender.window_bits = min(self.max_window_bits, window_bits)
            sender.in_flight -= 1
            sender.idle_since_s = now_s
