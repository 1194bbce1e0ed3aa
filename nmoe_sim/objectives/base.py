"""What a stage-1 objective says: the model it federates and each client's local step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from torch import nn

from nmoe_sim.config import ExtractorStageConfig
from nmoe_sim.learning.client import Update, Weights
from nmoe_sim.learning.evaluate import Evaluator
from nmoe_sim.models.spec import ModelSpec

# A client's local step as a backend task: the task function and its arguments after the state.
LocalTask = tuple[Callable[..., Update], tuple[Any, ...]]


class Objective(Protocol):
    """Stage 1 federates the extractor under a temporary head; the head depends on the objective
    and is dropped afterwards (only the extractor part of the weights goes on to stage 2)."""

    def model(self, spec: ModelSpec) -> nn.Module:
        """The model federated in stage 1: the extractor (keys `extractor.*`) and its head."""
        ...

    def train_flops_per_sample(self, spec: ModelSpec) -> float:
        """Simulated work of one local epoch over one sample."""
        ...

    def local_task(
        self, cfg: ExtractorStageConfig, weights: Weights | None, seed: int
    ) -> LocalTask: ...

    def accuracy(self, evaluator: Evaluator, spec: ModelSpec, weights: Weights) -> float | None:
        """Global test accuracy of the stage-1 model, where it is a classifier; else None."""
        ...
