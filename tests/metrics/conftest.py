"""Fixtures for the metric tests."""

from __future__ import annotations

import pytest

from benchmark.models import Classifier
from tests import models


@pytest.fixture(scope="session")
def small_cnn() -> Classifier:
    """A random conv net (5 classes, any input size) whose probabilities depend on every pixel."""
    return models.small_cnn()
