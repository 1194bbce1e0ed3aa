"""Seeded random processes that change a link over time, so a sweep needs no trace files.

- `LognormalFading`: the link's rate is multiplied by exp(X - sigma^2 / 2), X an AR(1) process
  stepped every `step_s` seconds, X_{k+1} = rho X_k + sigma sqrt(1 - rho^2) e_k with
  rho = exp(-step_s / correlation_s) and e_k standard normal, started in its stationary law
  N(0, sigma^2). The factor is log-normal with mean 1 (the link keeps its mean rate) and
  log-spread sigma; its autocorrelation decays as exp(-lag / correlation_s).
- `GilbertElliott`: the link's loss alternates between a good state (loss `good_loss`) and a
  bad one (`bad_loss`) held for exponential times of means `good_s` and `bad_s` (a
  continuous-time two-state Markov chain), started in its stationary law (bad with probability
  bad_s / (good_s + bad_s)).

Both are pure functions of time once seeded: values are generated in order, in blocks, and kept,
so every world (and every query order) sees the same realisation.
"""

from __future__ import annotations

import math
from bisect import bisect_right

import numpy as np

from nmoe_sim.network.dynamics.steps import regular_step

_BLOCK = 1024


class LognormalFading:
    """A mean-one log-normal factor, constant over steps of `step_s` seconds."""

    def __init__(
        self, sigma: float, correlation_s: float, step_s: float, rng: np.random.Generator
    ) -> None:
        self.sigma = sigma
        self.step_s = step_s
        self.rho = math.exp(-step_s / correlation_s)
        self._innovation = sigma * math.sqrt(1.0 - self.rho * self.rho)
        self._shift = sigma * sigma / 2.0
        self._rng = rng
        self._x = float(rng.normal(0.0, sigma))  # stationary start
        self._factors: list[float] = []

    def _extend(self, k: int) -> None:
        factors = self._factors
        while len(factors) <= k:
            noise = self._rng.standard_normal(_BLOCK)
            x = self._x
            rho, scale, shift = self.rho, self._innovation, self._shift
            block = []
            for e in noise.tolist():
                block.append(math.exp(x - shift))
                x = rho * x + scale * e
            self._x = x
            factors.extend(block)

    def value_at(self, t_s: float) -> tuple[float, float]:
        k, until = regular_step(t_s, self.step_s)
        self._extend(k)
        return self._factors[k], until


class GilbertElliott:
    """A loss rate switching between a good and a bad state at exponential times."""

    def __init__(
        self,
        good_s: float,
        bad_s: float,
        good_loss: float,
        bad_loss: float,
        rng: np.random.Generator,
    ) -> None:
        self.means = (good_s, bad_s)
        self.losses = (good_loss, bad_loss)
        self._rng = rng
        self._bad_first = bool(rng.random() < bad_s / (good_s + bad_s))
        self._switches = [0.0]  # times at which a state starts; alternating from the first

    def _extend(self, t_s: float) -> None:
        switches = self._switches
        while switches[-1] <= t_s:
            state = (len(switches) - 1 + self._bad_first) % 2
            durations = self._rng.exponential(self.means[state], 1)
            switches.append(switches[-1] + float(durations[0]))

    def value_at(self, t_s: float) -> tuple[float, float]:
        self._extend(t_s)
        switches = self._switches
        i = max(bisect_right(switches, t_s) - 1, 0)
        return self.losses[(i + self._bad_first) % 2], switches[i + 1]
