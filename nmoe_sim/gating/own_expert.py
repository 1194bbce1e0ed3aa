"""Routing reference: every client uses only its own expert (no gate, no communication)."""

from __future__ import annotations

import numpy as np

from nmoe_sim.gating.base import FixedRouting


class OwnExpert(FixedRouting):
    def weights(self, client: int, num_experts: int) -> np.ndarray:
        w = np.zeros(num_experts)
        w[client] = 1.0
        return w
