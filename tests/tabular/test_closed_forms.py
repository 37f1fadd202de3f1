"""The acceptance: Shapley values in closed form. On a linear output with independent features the
interventional Shapley value is w_i (x_i - E_B[x_i]); the exact methods are efficient; tree and
Kernel SHAP equal brute-force Shapley values on a small forest."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingRegressor

from benchmark.tabular.explainers import create_explainer
from benchmark.tabular.models import TabularModel
from benchmark.tabular.synthetic import independent_table, linear_model


def _rows_targets(model, n=4):
    rows = independent_table(n, model.weights.shape[1], seed=7)
    return rows, np.arange(n) % model.n_classes


@pytest.mark.parametrize(
    "name, params",
    [
        ("shap_kernel", {"background_size": 100, "nsamples": 64}),  # 2^4 - 2 = 14: exact
        ("shap_permutation", {"background_size": 100, "permutations": 3}),
    ],
)
def test_model_agnostic_shap_equals_w_times_x_minus_mean(name, params):
    model = linear_model(n_features=4, n_classes=2, background_size=100)
    rows, targets = _rows_targets(model)
    phi = create_explainer(name, **params).explain(model, rows, targets)
    truth = model.shapley(rows, targets)
    assert np.allclose(phi, truth, rtol=0, atol=1e-9), np.abs(phi - truth).max()
    # Efficiency: the attributions sum to f(x) - E_B f.
    gap = model.target_outputs(rows, targets) - model.outputs(model.background)[:, targets].mean(0)
    assert np.allclose(phi.sum(1), gap, atol=1e-9)


def test_kernel_shap_with_fewer_coalitions_than_exist_is_within_its_sampling_error():
    model = linear_model(n_features=8, n_classes=2, background_size=50, seed=3)
    rows, targets = _rows_targets(model)
    phi = create_explainer("shap_kernel", nsamples=60, background_size=50).explain(
        model, rows, targets
    )
    truth = model.shapley_against(rows, targets, model.background[:50])
    # Kernel SHAP's regression is exact for additive models once it sees enough coalitions; with
    # 60 of 254 it stays within 1e-6 of the closed form and keeps efficiency exactly.
    assert np.abs(phi - truth).max() < 1e-6 * np.abs(truth).max() + 1e-9


class _Regressor(TabularModel):
    def outputs(self, rows):
        return self.estimator.predict(np.asarray(rows, np.float64))[:, None]


def test_interventional_tree_shap_on_stumps_fitted_to_a_linear_function():
    """Depth-1 boosting is additive, f = b + sum_i g_i(x_i), so its interventional Shapley value is
    g_i(x_i) - E_B g_i(b_i) exactly; and g_i ~ w_i x_i, so it is w_i (x_i - E_B x_i) up to the fit."""
    w = np.array([2.0, -1.0, 0.5, 0.0])
    x = independent_table(2000, 4, seed=1)
    gbr = GradientBoostingRegressor(
        n_estimators=300, max_depth=1, learning_rate=0.2, random_state=0
    )
    gbr.fit(x, x @ w + 1.0)
    model = _Regressor("stumps", gbr, independent_table(100, 4, seed=2), 1, ("tree",))
    rows = independent_table(20, 4, seed=3)
    targets = np.zeros(20, dtype=np.int64)
    phi = create_explainer("shap_tree_interventional").explain(model, rows, targets)
    bg = model.background
    exact = np.stack(
        [
            [
                (
                    model.outputs(np.where(np.arange(4) == i, r, bg))[:, 0]
                    - model.outputs(bg)[:, 0]
                ).mean()
                for i in range(4)
            ]
            for r in rows
        ]
    )
    assert np.allclose(phi, exact, atol=1e-6)  # the additive closed form, to float32 precision
    # The stumps fit w.x + 1 only up to their steps (2,000 uniform rows: max |f - (w.x + 1)| is
    # 0.28 on these rows), so the closed form holds to that precision: measured, the largest error
    # is 9.4% of the largest attribution, the RMS error 5.5% of the RMS (correlation 0.9986).
    linear = w * (rows - bg.mean(0))
    assert np.abs(phi - linear).max() < 0.12 * np.abs(linear).max()
    assert np.sqrt(np.mean((phi - linear) ** 2)) < 0.07 * np.sqrt(np.mean(linear**2))
    assert np.corrcoef(phi.ravel(), linear.ravel())[0, 1] > 0.995
    efficiency = model.outputs(rows)[:, 0] - model.outputs(bg)[:, 0].mean()
    assert np.allclose(phi.sum(1), efficiency, atol=1e-5)


def _brute_force_shapley(model, x, target, background):
    """Interventional Shapley values by enumerating every coalition (2^F value evaluations)."""
    f = len(x)

    def value(s):
        z = background.copy()
        z[:, list(s)] = x[list(s)]
        return model.outputs(z)[:, target].mean()

    phi = np.zeros(f)
    for i in range(f):
        rest = [j for j in range(f) if j != i]
        for k in range(f):
            weight = math.factorial(k) * math.factorial(f - k - 1) / math.factorial(f)
            for s in itertools.combinations(rest, k):
                phi[i] += weight * (value((*s, i)) - value(s))
    return phi


@pytest.mark.parametrize(
    "name, params, atol",
    [
        ("shap_tree_interventional", {"background_size": 40}, 1e-7),  # exact (float32 trees)
        ("shap_kernel", {"background_size": 40, "nsamples": 64}, 1e-9),  # all 30 coalitions
        ("shap_permutation", {"background_size": 40, "permutations": 40}, 0.01),  # sampled
    ],
)
def test_shap_on_a_forest_equals_brute_force_shapley(name, params, atol):
    from tests.tabular.conftest import _fit

    model = _fit("random_forest")
    rows, targets = model.background[:3] + 0.25, np.array([0, 1, 2])
    phi = create_explainer(name, **params).explain(model, rows, targets)
    truth = np.stack(
        [
            _brute_force_shapley(model, r, int(t), model.background[:40])
            for r, t in zip(rows, targets, strict=True)
        ]
    )
    assert np.abs(phi - truth).max() < atol, np.abs(phi - truth).max()
    gap = model.target_outputs(rows, targets) - model.outputs(model.background[:40])[
        :, targets
    ].mean(0)
    assert np.allclose(phi.sum(1), gap, atol=1e-6)  # efficiency, also for sampled permutations


def test_path_dependent_tree_shap_is_efficient_against_its_expected_value():
    from tests.tabular.conftest import _fit

    model = _fit("random_forest")
    explainer = create_explainer("shap_tree_path")
    rows, targets = model.background[:5], np.array([0, 1, 2, 0, 1])
    phi = explainer.explain(model, rows, targets)
    expected = np.asarray(explainer._explainer(model).expected_value)[targets]
    assert np.allclose(phi.sum(1) + expected, model.target_outputs(rows, targets), atol=1e-6)


def test_lime_without_discretisation_recovers_w_times_the_feature_scale():
    """Undiscretised LIME regresses on standardised features, (x - mean_B) / std_B, so on a linear
    output its coefficient is w_i std_B(x_i), up to ridge shrinkage and the kernel's weighting."""
    model = linear_model(n_features=4, n_classes=2, background_size=100)
    rows, targets = _rows_targets(model, 2)
    lime = create_explainer("lime", discretize_continuous=False, num_samples=2000)
    coef = lime.explain(model, rows, targets)
    truth = model.weights[targets] * model.background.std(0)
    assert np.allclose(coef, truth, rtol=0.05, atol=0.02 * np.abs(truth).max())


def test_interventional_tree_shap_efficiency_on_the_fetal_health_forest(data_dir):
    """Pinned, not ideal: on the real forest, shap 0.51's interventional sums miss
    f(x) - E_B f on some rows by whole tree-leaf steps (multiples of 1/(trees x background rows),
    up to 0.02; 12 of the first 30 test rows, none of the next 30), which suggests that its routing
    and scikit-learn's disagree where a value sits on a split threshold. Path-dependent: exact."""
    from benchmark.tabular.data import load_table
    from benchmark.tabular.models import train_model

    model = train_model("random_forest", "fetal-health", seed=0)
    rows = load_table("fetal-health").split(0).part("test")[0][:30]
    targets = model.outputs(rows).argmax(1)
    phi = create_explainer("shap_tree_interventional").explain(model, rows, targets)
    base = model.outputs(model.background)[:, targets].mean(0)
    gap = np.abs(phi.sum(1) - (model.target_outputs(rows, targets) - base))
    assert gap.max() < 0.03 and np.mean(gap < 1e-6) >= 0.5, gap
    path = create_explainer("shap_tree_path")
    phi = path.explain(model, rows, targets)
    expected = np.asarray(path._explainer(model).expected_value)[targets]
    assert np.allclose(phi.sum(1) + expected, model.target_outputs(rows, targets), atol=1e-9)
