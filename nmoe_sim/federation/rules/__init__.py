"""Server rules: how the server folds client updates into its model, shared by every driver."""

from __future__ import annotations

from nmoe_sim.federation.rules.base import ServerRule
from nmoe_sim.federation.rules.buffered import Buffered
from nmoe_sim.federation.rules.mixing import Mixing, mix
from nmoe_sim.federation.rules.weighted_mean import WeightedMean

__all__ = ["Buffered", "Mixing", "ServerRule", "WeightedMean", "mix"]
