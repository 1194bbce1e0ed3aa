"""Server optimizers (Reddi et al. 2021): how far the server moves along the pseudo-gradient
Δ = aggregate - w that its rule produced. A new optimizer is one module plus one registry line."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from nmoe_sim.federation.server_optimizers.adaptive import FedAdagrad, FedAdam, FedYogi
from nmoe_sim.federation.server_optimizers.base import Deltas, ServerOptimizer, pseudo_gradient
from nmoe_sim.federation.server_optimizers.fedavg import FedAvg
from nmoe_sim.federation.server_optimizers.fedavgm import FedAvgM

_BY_NAME: dict[str, Callable[..., ServerOptimizer]] = {
    "fedavg": FedAvg,
    "fedavgm": FedAvgM,
    "fedadam": FedAdam,
    "fedyogi": FedYogi,
    "fedadagrad": FedAdagrad,
}
NAMES = tuple(_BY_NAME)


def _factory(name: str) -> Callable[..., ServerOptimizer]:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(
            f"unknown server optimizer {name!r}; choose one of {sorted(_BY_NAME)}"
        ) from None


def parameters(name: str) -> tuple[str, ...]:
    """The hyperparameters the optimizer called `name` takes, e.g. ("lr", "momentum")."""
    return tuple(inspect.signature(_factory(name)).parameters)


def by_name(name: str, **params: float) -> ServerOptimizer:
    """A fresh optimizer called `name` (its state starts empty), e.g. `by_name("fedadam", lr=0.1)`;
    unknown names or parameters are refused with the accepted ones listed."""
    factory = _factory(name)
    unknown = sorted(set(params) - set(parameters(name)))
    if unknown:
        raise ValueError(
            f"bad parameters for server optimizer {name!r}: {unknown}; "
            f"it takes {list(parameters(name))}"
        )
    return factory(**params)


__all__ = [
    "NAMES",
    "Deltas",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedYogi",
    "ServerOptimizer",
    "by_name",
    "parameters",
    "pseudo_gradient",
]
