"""Tabular models: seeded, deterministic fits with test scores; the seed study's random forest."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification

from benchmark.tabular.models import MODELS, fit_model, train_model


def _data(seed=0):
    x, y = make_classification(
        n_samples=240, n_features=5, n_informative=3, n_classes=3, random_state=seed
    )
    return x[:180], y[:180], x[180:], y[180:]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fit_is_seeded_and_scored(name):
    a = fit_model(name, *_data(), seed=0)
    b = fit_model(name, *_data(), seed=0)
    rows = _data()[2][:7]
    out = a.outputs(rows)
    assert out.shape == (7, 3) and out.dtype == np.float64
    assert np.allclose(out.sum(1), 1)
    assert np.array_equal(out, b.outputs(rows)) and a.key == b.key
    assert np.array_equal(
        a.target_outputs(rows, np.array([0, 1, 2, 0, 1, 2, 0])),
        out[np.arange(7), [0, 1, 2, 0, 1, 2, 0]],
    )
    assert a.background.shape == (100, 5) and np.array_equal(a.background, b.background)
    info = a.info
    assert 0.5 < info["test_accuracy"] <= 1 and set(info["test_f1"]) == {"0", "1", "2"}
    assert np.isclose(info["test_macro_f1"], np.mean(list(info["test_f1"].values())))
    assert fit_model(name, *_data(), seed=1).key != a.key


def test_unknown_model_names_the_known_ones():
    with pytest.raises(KeyError, match="random_forest"):
        fit_model("svm", *_data())


def test_random_forest_on_fetal_health_reaches_the_seed_range(data_dir):
    """The seed study reports no accuracy for its forest (its only figure is its Fashion-MNIST
    CNN's 91.2%). Ours (sklearn defaults, seed 0, 80/20 stratified): 0.953; seeds 1, 2: 0.955,
    0.937. The bounds guard against a broken split or fit, not a claimed range."""
    model = train_model("random_forest", "fetal-health", seed=0)
    info = model.info
    assert info["test_rows"] == 426 and info["train_rows"] == 1700
    assert 0.93 <= info["test_accuracy"] <= 0.98, info
    assert set(info["test_f1"]) == {"normal", "suspect", "pathological"}
    assert info["test_f1"]["normal"] > 0.95 and info["test_f1"]["suspect"] > 0.7
    assert train_model("random_forest", "fetal-health", seed=0) is model  # memoised
