"""What a server optimizer is: the step the server takes once its rule has aggregated.

Reddi et al. 2021 ("Adaptive Federated Optimization") treat the aggregate's difference to the
current model as a pseudo-gradient, Δ = aggregate - w, and let an optimizer step along it. The rule
(sync's weighted mean, FedAsync's mixing, FedBuff's buffer) says what Δ is; the optimizer says how
far to go. An optimizer's state (momentum, second moments) lives as long as the object: one per
federated stage run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from nmoe_sim.federation.aggregate import Weights

# The pseudo-gradient of each floating-point tensor, in float64; integer buffers have none.
Deltas = dict[str, torch.Tensor]


def moved(current: Weights, steps: Deltas) -> Weights:
    """`current + step` for each tensor named in `steps`, summed in float64 and cast back."""
    return {
        key: (current[key].to(torch.float64) + step).to(current[key].dtype)
        for key, step in steps.items()
    }


def pseudo_gradient(current: Weights, aggregate: Weights) -> Deltas:
    """Δ = aggregate - current, in float64, for the floating-point tensors."""
    return {
        key: value.to(torch.float64) - current[key].to(torch.float64)
        for key, value in aggregate.items()
        if torch.is_floating_point(value)
    }


class ServerOptimizer(ABC):
    """Moves the server model along the pseudo-gradient its rule produced."""

    @abstractmethod
    def step(self, current: Weights, delta: Deltas) -> Weights:
        """The tensors named in `delta`, moved from `current` along it (float64 arithmetic,
        cast back to each tensor's dtype); advances the optimizer's state by one step."""

    def toward(self, current: Weights, aggregate: Weights) -> Weights:
        """The next server model when the rule proposes `aggregate`: a step along
        Δ = aggregate - current. Tensors that are not floating point (integer buffers) are not
        stepped: they keep the aggregate's value."""
        stepped = self.step(current, pseudo_gradient(current, aggregate))
        return {key: stepped.get(key, value) for key, value in aggregate.items()}


def check_positive(name: str, value: float) -> None:
    if not (value > 0 and value != float("inf")):
        raise ValueError(f"server optimizer {name} must be a finite number > 0 (got {value})")


def check_decay(name: str, value: float) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"server optimizer {name} must be in [0, 1) (got {value})")
