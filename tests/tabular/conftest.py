"""Tiny tabular models for the contract tests: every model kind on a 5-feature table."""

from __future__ import annotations

import pytest
from sklearn.datasets import make_classification

from benchmark.tabular.models import MODELS, fit_model
from benchmark.tabular.synthetic import linear_model


def _fit(name: str):
    x, y = make_classification(
        n_samples=200, n_features=5, n_informative=3, n_classes=3, random_state=0
    )
    return fit_model(name, x[:150], y[:150], x[150:], y[150:], seed=0, background_size=40)


@pytest.fixture(scope="session", params=[*sorted(MODELS), "linear"])
def tiny_model(request):
    if request.param == "linear":
        return linear_model(n_features=5, n_classes=3, background_size=40)
    return _fit(request.param)
