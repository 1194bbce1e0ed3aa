"""A client's path over time: piecewise linear through knots (time, x, y), made lazily.

Every mobility model yields a `Track`: waypoints and pauses (random waypoint), one knot per time
step (Gauss-Markov), a trace's rows, or one knot (static). Knots are appended by the model's
`extend` as later times are asked for, from the client's own seeded stream, so a position is a
pure function of time whatever order it is read in.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Extend = Callable[["Track"], None]  # appends at least one knot past the last one


class Track:
    __slots__ = ("_extend", "times", "xs", "ys")

    def __init__(self, t0: float, x: float, y: float, extend: Extend | None = None) -> None:
        self.times = [t0]
        self.xs = [x]
        self.ys = [y]
        self._extend = extend

    def add(self, t: float, x: float, y: float) -> None:
        self.times.append(t)
        self.xs.append(x)
        self.ys.append(y)

    def reach(self, t: float) -> None:
        """Make knots up to time t (a track without `extend` holds its last knot for good)."""
        extend = self._extend
        if extend is None:
            return
        while self.times[-1] < t:
            extend(self)

    def at(self, t: float) -> tuple[float, float]:
        self.reach(t)
        x = float(np.interp(t, self.times, self.xs))
        y = float(np.interp(t, self.times, self.ys))
        return x, y

    def positions(self, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x and y at each of the (increasing) times `ts`."""
        if len(ts):
            self.reach(float(ts[-1]))
        return np.interp(ts, self.times, self.xs), np.interp(ts, self.times, self.ys)
