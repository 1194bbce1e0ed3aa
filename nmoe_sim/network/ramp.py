"""Slow start of one flow, in closed form: how much a window-limited flow pauses.

A TCP sender in slow start sends its window `w_k = w0 * 2^k` in round k and then waits for the
acknowledgements: rounds last one round-trip time R each, starting when the flow starts
transmitting. The window's bits go out at the flow's rate r (its max-min share); if they take less
than the round, the flow pauses until the round ends. Once a round's window takes the whole round
(`w_k >= r * R`) the flow is no longer window-limited: it sends without pauses from then on.

So a flow in slow start is a fluid flow with pauses. While its rate stays r, the pauses ahead of it
are a short sum over rounds (at most log2 of the window growth), with no timer per round: the flow
network adds `r * pause` bits to the flow's finishing point on its class's virtual clock and
re-plans the flow only when its rate changes (`advance` at the old rate, `pause_ahead` at the new
one). Windows and rates are in wire bits and bits/s.
"""

from __future__ import annotations


class Ramp:
    """The slow-start state of one flow: its rounds, and what it sent in the current one."""

    __slots__ = ("exited", "k", "round_sent", "rtt_s", "sent", "t0_s", "t_mark_s", "w0", "wmax")

    def __init__(self, t0_s: float, rtt_s: float, w0_bits: float, wmax_bits: float) -> None:
        self.t0_s = t0_s  # start of round 0: when the flow starts transmitting
        self.rtt_s = rtt_s
        self.w0 = w0_bits
        self.wmax = wmax_bits
        self.k = 0  # round the flow is in at t_mark_s
        self.round_sent = 0.0  # bits sent in round k by t_mark_s
        self.sent = 0.0  # bits sent in all by t_mark_s
        self.t_mark_s = t0_s
        self.exited = False  # no longer window-limited (for good)

    def window(self, k: int) -> float:
        w = self.w0 * 2.0**k if k < 1024 else self.wmax
        return w if w < self.wmax else self.wmax

    def advance(self, now: float, rate_bps: float) -> None:
        """Move the state to `now`, the flow having had `rate_bps` since the last mark."""
        if self.exited:
            return
        t = self.t_mark_s
        rtt = self.rtt_s
        while True:
            w = self.window(self.k)
            if w >= rate_bps * rtt:
                self.exited = True
                return
            round_end = self.t0_s + (self.k + 1) * rtt
            left = w - self.round_sent
            if left > 0.0:
                burst_end = t + left / rate_bps
                if burst_end >= round_end:  # its window outlasts the round: not window-limited
                    self.exited = True
                    return
                if now <= burst_end:
                    bits = rate_bps * (now - t) if now > t else 0.0
                    self.sent += bits
                    self.round_sent += bits
                    self.t_mark_s = now
                    return
                self.sent += left
                self.round_sent = w
                t = burst_end
            if now < round_end:
                self.t_mark_s = now
                return
            t = round_end
            self.k += 1
            self.round_sent = 0.0

    def pause_ahead(self, rate_bps: float, remaining_bits: float) -> float:
        """Seconds the flow will pause before it ends or leaves slow start, if its rate stays
        `rate_bps` from the mark on (call `advance` to now first)."""
        if self.exited:
            return 0.0
        rtt = self.rtt_s
        t = self.t_mark_s
        k = self.k
        sent_in_round = self.round_sent
        pause = 0.0
        while True:
            w = self.window(k)
            if w >= rate_bps * rtt:
                return pause
            left = w - sent_in_round
            if remaining_bits <= left:
                return pause  # ends within this round's burst
            round_end = self.t0_s + (k + 1) * rtt
            burst_end = t + left / rate_bps if left > 0.0 else t
            if burst_end >= round_end:
                return pause
            remaining_bits -= left
            pause += round_end - burst_end
            t = round_end
            k += 1
            sent_in_round = 0.0

    def window_after(self) -> float:
        """The congestion window once everything sent is acknowledged (call `advance` first): in
        slow start each acknowledged bit grows the window by one."""
        w = self.window(self.k)
        return min(self.wmax, 2.0 * w if self.exited else w + self.round_sent)
