"""Toy models with known probabilities for the metric tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmark.models import Classifier


class LinearToy(nn.Module):
    """Two classes: logit_0 = sum(weight * x), logit_1 = 0, so p_0 = sigmoid(sum(weight * x))."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.clone(), requires_grad=False)
        self.num_classes = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logit = (x * self.weight).flatten(1).sum(1)
        return torch.stack([logit, torch.zeros_like(logit)], 1)


def linear_toy(weight: torch.Tensor, mean=0.5, std=0.5) -> Classifier:
    channels = weight.shape[0]
    return Classifier(LinearToy(weight), (mean,) * channels, (std,) * channels, tuple(weight.shape))


@pytest.fixture(scope="session")
def small_cnn() -> Classifier:
    """A random conv net (5 classes, any input size) whose probabilities depend on every pixel."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.Tanh(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 5),
    )  # fmt: skip
    with torch.no_grad():
        net[-1].weight.mul_(20)  # spread the probabilities so changes are visible
    return Classifier(net, (0.5,) * 3, (0.5,) * 3, (3, 20, 20), "small_cnn")
