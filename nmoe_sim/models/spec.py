"""ModelSpec: everything needed to build any model of a run, and what each costs in FLOPs."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch
from torch.utils.flop_counter import FlopCounterMode

from nmoe_sim.models.extractors import Extractor, build_extractor
from nmoe_sim.models.gate import Gate
from nmoe_sim.models.heads import Classifier, ContrastiveModel, Expert

# Backward costs about twice the forward pass, so a training step costs about 3x.
TRAIN_FLOPS_FACTOR = 3


@dataclass(frozen=True)
class ModelSpec:
    extractor: str
    input_shape: tuple[int, int, int]
    num_classes: int
    num_experts: int
    feature_dim: int
    expert_hidden: int
    gate_hidden: int
    projection_dim: int

    def build_extractor(self) -> Extractor:
        return build_extractor(self.extractor, self.input_shape, self.feature_dim)

    def build_classifier(self) -> Classifier:
        return Classifier(self.build_extractor(), self.num_classes)

    def build_contrastive(self) -> ContrastiveModel:
        return ContrastiveModel(self.build_extractor(), self.projection_dim)

    def build_expert(self) -> Expert:
        return Expert(self.feature_dim, self.expert_hidden, self.num_classes)

    def build_gate(self) -> Gate:
        return Gate(self.feature_dim, self.gate_hidden, self.num_experts)

    def forward_flops(self, part: str) -> int:
        """FLOPs of one sample's forward pass through `part`, counted by torch on the real model."""
        return _count_forward_flops(self, part)


@cache
def _count_forward_flops(spec: ModelSpec, part: str) -> int:
    builders = {
        "classifier": (spec.build_classifier, spec.input_shape),
        "contrastive": (spec.build_contrastive, spec.input_shape),
        "extractor": (spec.build_extractor, spec.input_shape),
        "expert": (spec.build_expert, (spec.feature_dim,)),
        "gate": (spec.build_gate, (spec.feature_dim,)),
    }
    build, shape = builders[part]
    model = build().eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *shape))
    return int(counter.get_total_flops())
