"""FedCE: the extractor is federated under a linear classifier head, on cross-entropy."""

from __future__ import annotations

from torch import nn

from nmoe_sim.config import ExtractorStageConfig
from nmoe_sim.learning import client as tasks
from nmoe_sim.learning.client import Weights
from nmoe_sim.learning.evaluate import Evaluator
from nmoe_sim.models.spec import TRAIN_FLOPS_FACTOR, ModelSpec
from nmoe_sim.objectives.base import LocalTask


class FedCE:
    def model(self, spec: ModelSpec) -> nn.Module:
        return spec.build_classifier()

    def train_flops_per_sample(self, spec: ModelSpec) -> float:
        return TRAIN_FLOPS_FACTOR * spec.forward_flops("classifier")

    def local_task(
        self, cfg: ExtractorStageConfig, weights: Weights | None, seed: int
    ) -> LocalTask:
        return tasks.fit_classifier, (weights, cfg.optim, cfg.local_epochs, seed)

    def accuracy(self, evaluator: Evaluator, spec: ModelSpec, weights: Weights) -> float | None:
        # The temporary head makes the global stage-1 model a classifier.
        return evaluator.shared_accuracy(evaluator.classify(spec, weights))
