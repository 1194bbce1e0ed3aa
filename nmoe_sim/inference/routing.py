"""Which experts a query asks, decided at the client when its gate has run.

The paper's gate: the top k scores, mixture weights softmax over the kept scores. Latency-aware
routing (a step beyond the paper) subtracts `latency_weight x expected delay (ms)` from each
score before the top k is taken; the kept experts are still mixed with the gate's own weights
(softmax of their unpenalised scores): the penalty decides whom to ask, the gate how much to
trust each answer.

Expected delays are only what a client can know when it decides: each (client, expert) round
trip starts at its nominal idle value (path latency + size over bandwidth both ways + the
expert's mean service time, measured on an empty copy of the network) and then follows an EWMA
of the round trips the client has observed, late ones included. No future event is consulted.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

import numpy as np
import simpy

from nmoe_sim.clock import run_clock
from nmoe_sim.network.channel import NetworkModel
from nmoe_sim.network.devices import client_node

# Weight of the newest observation in the EWMA of round trips: about the last five count.
EWMA_ALPHA = 0.2


class DelayEstimator:
    """Each client's expected round trip (seconds) to each expert."""

    def __init__(self, nominal_s: np.ndarray, alpha: float = EWMA_ALPHA) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must lie in (0, 1], got {alpha}")
        self.expected = np.array(nominal_s, dtype=float)  # [clients, experts], updated in place
        self.alpha = alpha

    def expected_s(self, client: int) -> np.ndarray:
        return self.expected[client]

    def observe(self, client: int, expert: int, round_trip_s: float) -> None:
        row = self.expected[client]
        row[expert] += self.alpha * (round_trip_s - row[expert])


class Router:
    """Top-k routing of one query from its client's gate scores."""

    def __init__(
        self,
        scores: Sequence[np.ndarray],
        top_k: int,
        latency_weight: float = 0.0,
        estimator: DelayEstimator | None = None,
        samples: Sequence[np.ndarray] | None = None,
    ) -> None:
        """`scores[c]`: client c's [samples, experts] gate scores; with `samples`, row i of
        `scores[c]` is for test sample `samples[c][i]` (sorted), else row s for sample s."""
        experts = scores[0].shape[1] if len(scores) else 0
        if not 1 <= top_k <= experts:
            raise ValueError(f"top_k={top_k} must lie in 1..{experts}")
        if latency_weight > 0 and estimator is None:
            raise ValueError("latency-aware routing needs a DelayEstimator")
        self.scores = scores
        self.samples = samples
        self.top_k = top_k
        self.latency_weight = latency_weight
        self.estimator = estimator

    def choose(self, client: int, sample: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
        """The experts asked (best first) and their mixture weights (summing to one)."""
        row = sample
        if self.samples is not None:
            asked = self.samples[client]
            row = int(np.searchsorted(asked, sample))
            if row == len(asked) or asked[row] != sample:
                raise KeyError(f"client {client} has no gate scores for test sample {sample}")
        raw = np.asarray(self.scores[client][row], dtype=float)
        ranked = raw
        if self.latency_weight > 0:
            assert self.estimator is not None
            ranked = raw - self.latency_weight * 1e3 * self.estimator.expected_s(client)
        # Stable sort: equal scores go to the lower expert index, whatever the platform.
        chosen = np.argsort(-ranked, kind="stable")[: self.top_k]
        kept = raw[chosen]
        w = np.exp(kept - kept.max())
        w /= w.sum()
        return tuple(int(j) for j in chosen), tuple(float(x) for x in w)


def nominal_round_trips(
    make_network: Callable[[], NetworkModel],
    num_clients: int,
    features_bytes: int,
    output_bytes: int,
    service_mean_s: Sequence[float],
    experts: Sequence[Sequence[int]] | None = None,
) -> np.ndarray:
    """[clients, experts] idle round trips: features there, mean service, output back, each
    transfer timed alone on an empty network of its own clock (the client's knowledge of its
    links' specifications, not of their future load), once a first transfer between the two has
    opened whatever connection the transport keeps. Own expert: its service time only.

    `experts[c]`: the only experts client c may ask (`stages.gate.remote_experts`); the others
    are never timed and stay infinitely far. None: every expert."""
    env = simpy.Environment()
    network = make_network()

    def timed(src: str, dst: str, size: int) -> Generator[Any, Any, float]:
        start = env.now
        yield from network.carry(env, src, dst, size)
        return env.now - start

    out = np.full((num_clients, num_clients), np.inf)
    for c in range(num_clients):
        for j in range(num_clients) if experts is None else experts[c]:
            out[c, j] = service_mean_s[j]
            if j == c:
                continue
            for src, dst, size in (
                (client_node(c), client_node(j), features_bytes),
                (client_node(j), client_node(c), output_bytes),
            ):
                for _ in range(2):  # the first may open a connection: keep the second
                    proc = env.process(timed(src, dst, size))
                    run_clock(env, until=proc)  # one at a time: the network is idle for each
                out[c, j] += proc.value
    return out
