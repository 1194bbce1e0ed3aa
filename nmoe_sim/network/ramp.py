"""Slow start of one flow, in closed form: how much a window-limited flow pauses.

A TCP sender in slow start sends its window `w_k = w0 * 2^k` (at most `wmax`) in round k and then
waits for the acknowledgements: rounds last one round-trip time R each, from when the flow starts
transmitting. A round's window goes out at the flow's rate r (its max-min share); if that takes
less than the round, the flow pauses until the round ends. Once a round's window fills the round
(`w_k >= r * R`) the flow is no longer window-limited and sends without pauses from then on.

So a flow in slow start is a fluid flow with pauses. While its rate stays r, the pauses ahead of
it are a short sum over rounds (at most log2 of the window's growth), with no timer per round: the
flow network adds `r * pause` bits to the flow's finishing point on its class's virtual clock and
re-plans the flow only when its rate changes (`advance` at the old rate, then `plan` at the new
one). Windows and sizes are in wire bits, rates in bits/s, times in seconds.
"""

from __future__ import annotations

import math


class Ramp:
    """The slow-start state of one flow: its rounds, and what it has sent."""

    __slots__ = (
        "exit_k",
        "exit_s",
        "exit_w",
        "exited",
        "k",
        "left",
        "round_sent",
        "rtt_s",
        "t0_s",
        "t_mark_s",
        "w",
        "w0",
        "wmax",
    )

    def __init__(
        self, t0_s: float, rtt_s: float, w0_bits: float, wmax_bits: float, size_bits: float
    ) -> None:
        self.t0_s = t0_s  # start of round 0: when the flow starts transmitting
        self.rtt_s = rtt_s
        self.w0 = w0_bits
        self.wmax = wmax_bits
        self.k = 0  # round the flow is in at t_mark_s
        # Its window in round k: w0 * 2^k, at most wmax (doubling is exact in floating point).
        self.w = w0_bits if w0_bits < wmax_bits else wmax_bits
        self.round_sent = 0.0  # bits sent in round k by t_mark_s
        self.left = size_bits  # bits still to send at t_mark_s
        self.t_mark_s = t0_s
        self.exited = False  # no longer window-limited, for good
        # Where the current plan leaves slow start (round, time); inf: it ends before.
        self.exit_k = 0
        self.exit_w = self.w
        self.exit_s = math.inf

    def advance(self, now: float, rate_bps: float) -> None:
        """Move the state to `now`, the flow having had `rate_bps` since the last mark."""
        if self.exited:
            return
        # The plan made at this rate left slow start by now. A plan that leaves at once waits for
        # time to pass: a rate that lasts no time (another flow starts at the same instant)
        # must not end slow start.
        if now >= self.exit_s and now > self.t_mark_s:
            self.k = self.exit_k
            self.w = self.exit_w
            self.exited = True
            return
        t = self.t_mark_s
        t0 = self.t0_s
        rtt = self.rtt_s
        k = self.k
        sent = self.round_sent
        left = self.left
        w = self.w
        while True:
            round_end = t0 + (k + 1) * rtt
            burst = w - sent
            if burst > 0.0:
                if now <= t + burst / rate_bps:
                    bits = rate_bps * (now - t) if now > t else 0.0
                    left -= bits
                    sent += bits
                    break
                left -= burst
                sent = w
            if now < round_end:
                break
            t = round_end
            k += 1
            sent = 0.0
            w = w * 2.0 if w * 2.0 < self.wmax else self.wmax
        self.k = k
        self.w = w
        self.round_sent = sent
        self.left = left
        self.t_mark_s = now

    def plan(self, rate_bps: float) -> float:
        """Seconds the flow will pause before it ends or leaves slow start if its rate stays
        `rate_bps` from the mark on (call `advance` to now first); notes where it leaves."""
        self.exit_s = math.inf
        if self.exited:
            return 0.0
        t0 = self.t0_s
        rtt = self.rtt_s
        target = rate_bps * rtt
        t = self.t_mark_s
        k = self.k
        sent = self.round_sent
        remaining = self.left
        pause = 0.0
        wmax = self.wmax
        w = self.w
        while True:
            round_end = t0 + (k + 1) * rtt
            burst = w - sent
            if w >= target or (burst > 0.0 and t + burst / rate_bps >= round_end):
                # Its window fills the round: it is not window-limited any more.
                self.exit_k = k
                self.exit_w = w
                self.exit_s = t
                return pause
            if remaining <= burst:
                return pause  # it ends within this round's burst
            remaining -= burst
            pause += round_end - (t + burst / rate_bps if burst > 0.0 else t)
            t = round_end
            k += 1
            sent = 0.0
            w = w * 2.0 if w * 2.0 < wmax else wmax

    def rebase(self, now: float, rtt_s: float) -> None:
        """The path's round trip is now `rtt_s` (call `advance` to now first): the round under
        way ends when it would have (its acknowledgements are on their way), the rounds after it
        last `rtt_s`. Window and bits sent are kept."""
        round_end = self.t0_s + (self.k + 1) * self.rtt_s
        self.rtt_s = rtt_s
        self.t0_s = round_end - (self.k + 1) * rtt_s
        self.exit_s = math.inf

    def shift(self, gap_s: float) -> None:
        """The flow paused for `gap_s` seconds (call `advance` to the pause's start first): its
        rounds resume where they stood."""
        self.t0_s += gap_s
        self.t_mark_s += gap_s
        self.exit_s = math.inf

    def window_after(self) -> float:
        """The congestion window once everything sent is acknowledged (call `advance` first): in
        slow start each acknowledged bit grows the window by one."""
        w = self.w
        return min(self.wmax, 2.0 * w if self.exited else w + self.round_sent)
