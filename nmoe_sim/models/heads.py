"""Small heads on top of the shared features: classifier, projection head and expert."""

from __future__ import annotations

import torch
from torch import nn

from nmoe_sim.models.extractors import Extractor


class Classifier(nn.Module):
    """Feature extractor + linear head: FedCE's temporary head and the baselines' model."""

    def __init__(self, extractor: Extractor, num_classes: int) -> None:
        super().__init__()
        self.extractor = extractor
        self.head = nn.Linear(extractor.out_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.extractor(x))


class ContrastiveModel(nn.Module):
    """Feature extractor + SimCLR projection head (FedSC); only the extractor is kept after."""

    def __init__(self, extractor: Extractor, projection_dim: int) -> None:
        super().__init__()
        self.extractor = extractor
        d = extractor.out_dim
        self.projector = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, projection_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.extractor(x))


class Expert(nn.Module):
    """A client's personalized expert: an MLP from features to class logits."""

    def __init__(self, feature_dim: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(feature_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)
