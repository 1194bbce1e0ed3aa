"""A flow in slow start stepped burst by burst through a piecewise-constant rate: the definition
that the flow network's closed form (nmoe_sim/network/ramp.py) keeps, for tests to compare with."""

from __future__ import annotations

import math
from collections.abc import Callable


def stepped_finish(
    t0: float,
    w0: float,
    size: float,
    rates: list[tuple[float, float]],
    rtt_at: Callable[[float], float],
    wmax: float = math.inf,
) -> float:
    """When a flow of `size` bits starting at `t0` with window `w0` ends, alone on a link whose
    rate steps (`rates`: (from time, bits/s), the first at or before t0). Each round lasts the
    round trip in effect when it starts (`rtt_at(t)`); the window doubles each round (up to
    `wmax`) until it fills a round at the current rate and round trip; from then on the flow sends
    at the rate."""

    def rate_at(t: float) -> tuple[float, float]:
        rate, change = rates[0][1], math.inf
        for start, r in rates:
            if start <= t:
                rate = r
            else:
                change = start
                break
        return rate, change

    t, w, sent, left, limited = t0, min(w0, wmax), 0.0, size, True
    round_end = t0 + rtt_at(t0)
    while True:
        r, change = rate_at(t)
        burst = w - sent
        if limited and (w >= r * rtt_at(t) or (burst > 0 and t + burst / r >= round_end)):
            limited = False
        if not limited:
            if t + left / r <= change:
                return t + left / r
            left -= r * (change - t)
            t = change
            continue
        if burst > 0:  # sending: until the burst, the message or the rate ends
            step = min(burst, left) / r
            if t + step <= change:
                if left <= burst:
                    return t + step
                t += step
                sent, left = w, left - burst
                continue
            left -= r * (change - t)
            sent += r * (change - t)
            t = change
            continue
        # pausing until the round ends (or the rate changes, which may end the pause)
        if round_end <= change:
            t, sent, w = round_end, 0.0, min(2 * w, wmax)
            round_end = t + rtt_at(t)
        else:
            t = change
