"""The serving stage's figures, computed from the query outcomes alone (pure functions).

Each query's prediction mixes the outputs of the experts that answered it, with the gate's
weights renormalised over them; its expert outputs are the real experts' outputs on the sample.
"""

from __future__ import annotations

import numpy as np
import torch

from nmoe_sim.inference.serving import QueryOutcome, ServingRun
from nmoe_sim.telemetry.schema import QueryRecord
from nmoe_sim.telemetry.summary import InferenceSummary


def predictions(outcomes: list[QueryOutcome], expert_probs: torch.Tensor) -> np.ndarray:
    """Predicted class of each query: argmax of its answered experts' weighted mixture."""
    probs = expert_probs.detach().cpu().to(torch.float64).numpy()
    out = np.empty(len(outcomes), dtype=np.int64)
    for i, o in enumerate(outcomes):
        weights = o.mixture_weights()
        experts = list(weights)
        mixed = np.asarray(list(weights.values())) @ probs[o.query.sample, experts]
        out[i] = int(np.argmax(mixed))
    return out


def percentile_ms(latencies_s: np.ndarray, q: float) -> float:
    """The q-th percentile in ms (linear interpolation between order statistics)."""
    return float(np.percentile(latencies_s, q) * 1e3) if len(latencies_s) else float("nan")


def summarise(
    run: ServingRun, expert_probs: torch.Tensor, labels: torch.Tensor
) -> tuple[InferenceSummary, list[QueryRecord]]:
    """The summary's `inference` entry and one record per query (inference.csv)."""
    outcomes = run.outcomes
    n = len(outcomes)
    latency = np.array([o.latency_s for o in outcomes])
    predicted = predictions(outcomes, expert_probs)
    truth = labels.detach().cpu().numpy()[[o.query.sample for o in outcomes]]
    correct = predicted == truth
    own_only = np.array([o.answered == (o.query.client,) for o in outcomes], dtype=bool)
    span = run.t_end_s - run.t_start_s
    summary = InferenceSummary(
        queries=n,
        accuracy=float(correct.mean()) if n else float("nan"),
        latency_mean_ms=float(latency.mean() * 1e3) if n else float("nan"),
        latency_p50_ms=percentile_ms(latency, 50),
        latency_p95_ms=percentile_ms(latency, 95),
        latency_p99_ms=percentile_ms(latency, 99),
        bytes_total=int(run.bytes_total),
        bytes_per_query=run.bytes_total / n if n else 0.0,
        own_expert_only_fraction=float(own_only.mean()) if n else float("nan"),
        expert_utilisation=[float(b / span) if span > 0 else 0.0 for b in run.busy_s],
        expert_requests=[int(r) for r in run.requests],
        deadline_misses=int(sum(o.missed > 0 for o in outcomes)),
        late_expert_answers=int(run.late_answers),
        t_start_s=float(run.t_start_s),
        sim_time_s=float(span),
    )
    records = [
        QueryRecord(
            query=o.query.qid,
            client=o.query.client,
            sample=o.query.sample,
            t_arrival_s=o.query.t_arrival_s,
            t_done_s=o.t_done_s,
            latency_ms=o.latency_s * 1e3,
            experts=";".join(map(str, o.chosen)),
            answered=";".join(map(str, o.answered)),
            bytes=o.bytes,
            correct=bool(c),
            own_only=bool(own),
            deadline_missed=o.missed > 0,
        )
        for o, c, own in zip(outcomes, correct, own_only, strict=True)
    ]
    return summary, records
