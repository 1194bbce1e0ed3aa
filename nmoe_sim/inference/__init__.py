"""The serving simulation: queries, routing, expert queues, deadlines, and its figures."""

from nmoe_sim.inference.figures import summarise
from nmoe_sim.inference.routing import DelayEstimator, Router, nominal_round_trips
from nmoe_sim.inference.serving import QueryOutcome, ServingRun, ServingSettings, serve
from nmoe_sim.inference.workload import Query, ServingModel, poisson_queries, queried_samples

__all__ = [
    "DelayEstimator",
    "Query",
    "QueryOutcome",
    "Router",
    "ServingModel",
    "ServingRun",
    "ServingSettings",
    "nominal_round_trips",
    "poisson_queries",
    "queried_samples",
    "serve",
    "summarise",
]
