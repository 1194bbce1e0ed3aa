"""Shared feature extractors: a small CPU-friendly CNN and a ResNet-18 adapted to 32x32 inputs."""

from __future__ import annotations

import torch
from torch import nn


class Extractor(nn.Module):
    """A shared feature extractor: maps inputs to `out_dim` features."""

    out_dim: int


class SmallCNN(Extractor):
    """Two conv blocks and a linear layer: about 2.5 MFLOPs per 28x28 image."""

    def __init__(self, in_channels: int, image_size: int, feature_dim: int) -> None:
        super().__init__()
        self.out_dim = feature_dim
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(32 * side * side, feature_dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.skip = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class ResNet18(Extractor):
    """ResNet-18 for 32x32 inputs: 3x3 stem without max-pool, as is usual for CIFAR-10."""

    def __init__(self, in_channels: int, feature_dim: int) -> None:
        super().__init__()
        self.out_dim = feature_dim
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
        ]
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
            cin = cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        # Project to feature_dim so experts and gate see the same width for every extractor.
        self.proj = nn.Identity() if feature_dim == 512 else nn.Linear(512, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.body(x))


def build_extractor(name: str, input_shape: tuple[int, int, int], feature_dim: int) -> Extractor:
    channels, height, width = input_shape
    if name == "small_cnn":
        if height != width or height % 4:
            raise ValueError(
                f"small_cnn needs square inputs with side divisible by 4, got {input_shape}"
            )
        return SmallCNN(channels, height, feature_dim)
    if name == "resnet18":
        return ResNet18(channels, feature_dim)
    raise ValueError(f"unknown extractor {name!r}")
