"""FedSC: federated SimCLR; the extractor learns under a projection head from two augmented
views of every local image (NT-Xent); labels are not used."""

from __future__ import annotations

from torch import nn

from nmoe_sim.config import ExtractorStageConfig
from nmoe_sim.learning import client as tasks
from nmoe_sim.learning.client import ContrastiveSettings, Weights
from nmoe_sim.learning.evaluate import Evaluator
from nmoe_sim.models.spec import TRAIN_FLOPS_FACTOR, ModelSpec
from nmoe_sim.objectives.base import LocalTask


class FedSC:
    def model(self, spec: ModelSpec) -> nn.Module:
        return spec.build_contrastive()

    def train_flops_per_sample(self, spec: ModelSpec) -> float:
        return TRAIN_FLOPS_FACTOR * spec.forward_flops("contrastive") * 2  # two views

    def local_task(
        self, cfg: ExtractorStageConfig, weights: Weights | None, seed: int
    ) -> LocalTask:
        settings = ContrastiveSettings(cfg.temperature, cfg.crop_scale_min, cfg.jitter)
        return tasks.fit_contrastive, (weights, cfg.optim, cfg.local_epochs, settings, seed)

    def accuracy(self, evaluator: Evaluator, spec: ModelSpec, weights: Weights) -> float | None:
        return None  # a projection head classifies nothing
