"""Piecewise-constant functions of simulated time: the common currency of everything that changes.

A `Steps` holds values that each hold from their time until the next one's; after the last time
the last value holds for good, or, with a period, the whole pattern repeats (a trace that wraps
around). An offset reads the pattern that many seconds ahead, so links that share one trace are
not in lock-step. `value_at(t)` gives the value at t and until when it holds, which is all the
flow network asks of a link's schedule.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_right
from collections.abc import Sequence

_SLIVER_S = 1e-9


class Steps:
    """value[i] holds on [times[i], times[i+1]); times start at 0 and increase strictly."""

    __slots__ = ("offset_s", "period_s", "times", "values")

    def __init__(
        self,
        times: Sequence[float],
        values: Sequence[float],
        *,
        period_s: float | None = None,
        offset_s: float = 0.0,
    ) -> None:
        if not times or len(times) != len(values):
            raise ValueError("a step function needs as many values as times, at least one")
        if times[0] != 0.0:
            raise ValueError(f"a step function starts at time 0, not {times[0]}")
        if any(b <= a for a, b in itertools.pairwise(times)):
            raise ValueError("step times must increase strictly")
        if period_s is not None and not times[-1] < period_s:
            raise ValueError(f"period {period_s} s must exceed the last step's time {times[-1]}")
        self.times = list(times)
        self.values = list(values)
        self.period_s = period_s
        self.offset_s = offset_s

    @classmethod
    def constant(cls, value: float) -> Steps:
        return cls([0.0], [value])

    def shifted(self, offset_s: float) -> Steps:
        """The same pattern read `offset_s` seconds ahead (a repeating one wraps the offset)."""
        offset = self.offset_s + offset_s
        if self.period_s is not None:
            offset %= self.period_s
        return Steps(self.times, self.values, period_s=self.period_s, offset_s=offset)

    def value_at(self, t_s: float) -> tuple[float, float]:
        """(value at `t_s`, time at which the next step starts; inf when none does). A time
        within a nanosecond before a step counts as that step's start, so rounding never makes
        a sliver of a step (a wasted change) where a pattern wraps or is read with an offset."""
        times = self.times
        local = t_s + self.offset_s + _SLIVER_S
        period = self.period_s
        if period is None:
            i = max(bisect_right(times, local) - 1, 0)
            if i + 1 < len(times):
                return self.values[i], t_s + max(times[i + 1] - local + _SLIVER_S, 0.0)
            return self.values[i], math.inf
        within = local - math.floor(local / period) * period
        i = max(bisect_right(times, within) - 1, 0)
        end = times[i + 1] if i + 1 < len(times) else period
        return self.values[i], t_s + max(end - within + _SLIVER_S, _SLIVER_S)

    def mean(self) -> float:
        """The time-weighted mean over one period (or over the steps given, the last one
        counting for its own time's length zero when nothing repeats)."""
        end = self.period_s if self.period_s is not None else self.times[-1]
        if end <= 0:
            return self.values[0]
        bounds = [*self.times, end]
        total = sum(v * (b - a) for v, a, b in zip(self.values, bounds, bounds[1:], strict=False))
        return total / end


def regular_step(t_s: float, step_s: float) -> tuple[int, float]:
    """For a value that changes every `step_s` from time 0 (times before 0 read the first): the
    step holding at `t_s` and when it ends (a time on a boundary, up to rounding, starts the
    next step)."""
    k = max(math.floor(t_s / step_s), 0)
    until = (k + 1) * step_s
    if until <= t_s:  # rounding on a step's boundary
        k += 1
        until = (k + 1) * step_s
    return k, until


def merge_equal(times: list[float], values: list[float]) -> tuple[list[float], list[float]]:
    """The same function with consecutive equal values joined into one step."""
    out_t: list[float] = []
    out_v: list[float] = []
    for t, v in zip(times, values, strict=True):
        if out_v and out_v[-1] == v:
            continue
        out_t.append(t)
        out_v.append(v)
    return out_t, out_v
