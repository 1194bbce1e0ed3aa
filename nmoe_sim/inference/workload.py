"""What is served: the queries (when and which sample, per client) and what the trained NMoE
computes for every sample (features, gate scores, expert outputs), known up front.

The real models run once, in batch, on the driver (measurement, like evaluation); the serving
clock only decides who answers each query and when. So every figure of the serving stage comes
from events on the clock, and no query's outcome depends on the host's speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from nmoe_sim.seeds import numpy_rng


@dataclass(frozen=True)
class Query:
    qid: int  # in arrival order over all clients (ties: lower client first)
    client: int
    sample: int  # index into the global test set
    t_arrival_s: float


@dataclass(frozen=True)
class ServingModel:
    """The trained NMoE's outputs on every test sample. Expert `j` is hosted by client `j`."""

    features: torch.Tensor  # [samples, feature_dim]: what a client sends to a remote expert
    expert_probs: torch.Tensor  # [samples, experts, classes]: what each expert sends back
    scores: Sequence[np.ndarray]  # per client, [samples, experts]: its gate's scores
    fe_flops: float  # one query's feature extractor + gate on its client
    expert_flops: float  # one expert answer
    # Per client, the test samples its rows of `scores` are for (sorted); None: all, in order.
    samples: Sequence[np.ndarray] | None = None

    @property
    def num_experts(self) -> int:
        return int(self.expert_probs.shape[1])


def poisson_queries(
    seed: int,
    clients: Sequence[int],
    pools: Sequence[np.ndarray],
    *,
    rate_qps: float,
    per_client: int,
    start_s: float = 0.0,
) -> list[Query]:
    """`per_client` queries at each client: a Poisson process of `rate_qps` from `start_s`, each
    query a sample drawn uniformly (with replacement) from the client's `pool`.

    The streams are named by client only, not by method, so every method serves the very same
    queries (common random numbers make methods comparable query by query).
    """
    drawn = []
    for client, pool in zip(clients, pools, strict=True):
        pool = np.asarray(pool)
        if len(pool) == 0:
            raise ValueError(f"client {client} has no test samples to draw queries from")
        rng = numpy_rng(seed, "inference", "arrivals", client)
        times = start_s + np.cumsum(rng.exponential(1.0 / rate_qps, per_client))
        samples = pool[rng.integers(0, len(pool), per_client)]
        drawn += [(float(t), client, int(s)) for t, s in zip(times, samples, strict=True)]
    drawn.sort(key=lambda row: (row[0], row[1]))
    return [Query(i, c, s, t) for i, (t, c, s) in enumerate(drawn)]


def queried_samples(queries: Sequence[Query], num_clients: int) -> list[np.ndarray]:
    """Per client (ids 0..num_clients-1), the distinct test samples it is queried on, sorted."""
    asked: list[list[int]] = [[] for _ in range(num_clients)]
    for q in queries:
        asked[q.client].append(q.sample)
    return [np.unique(np.asarray(s, dtype=np.int64)) for s in asked]
