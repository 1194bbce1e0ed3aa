"""Routing reference: every client mixes all experts with equal weights."""

from __future__ import annotations

import numpy as np

from nmoe_sim.gating.base import FixedRouting


class Uniform(FixedRouting):
    def weights(self, client: int, num_experts: int) -> np.ndarray:
        return np.full(num_experts, 1.0 / num_experts)
