"""Tabular metrics: the contract over the registry, and a closed form or hand-computed case each."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.tabular.explainers import create_explainer
from benchmark.tabular.metrics import create_metric, registry
from benchmark.tabular.metrics.removal import area, removal_curves
from benchmark.tabular.synthetic import independent_table, linear_model

METRICS = registry.names()


def test_the_registry_discovers_every_module():
    assert set(METRICS) >= {
        "feature_deletion",
        "feature_insertion",
        "feature_faithfulness_correlation",
        "agreement",
    }
    for name in METRICS:
        module = __import__(registry.entry(name).module, fromlist=["_"])
        assert "Definition." in module.__doc__, name


@pytest.mark.parametrize("name", METRICS)
def test_contract(name, tiny_model):
    metric = create_metric(name, **registry.get(name).fast_params)
    rows = tiny_model.background[:4] + 0.1
    targets = np.array([0, 1, 2, 0])
    attributions = create_explainer("random").explain(tiny_model, rows, targets)
    reference = create_explainer("random", seed=1).explain(tiny_model, rows, targets)
    kw = {"model": tiny_model, "rows": rows, "targets": targets, "attributions": attributions}
    kw["reference"] = reference if metric.needs_reference else None
    reason = metric.supports(tiny_model)
    if reason:  # only ground-truth metrics may refuse, and only models without a closed form
        assert "ground-truth" in registry.entry(name).tags and tiny_model.name != "linear"
        with pytest.raises(ValueError, match="unknown"):
            metric(**kw)
        return
    scores = metric(**kw)
    assert set(scores) == set(metric.higher_is_better)
    for values in scores.values():
        assert values.shape == (4,) and values.dtype == np.float64 and np.isfinite(values).all()
    again = metric(**kw)
    alone = [
        metric(
            **{
                **kw,
                **{k: kw[k][i : i + 1] for k in ("rows", "targets", "attributions")},
                "reference": None if kw["reference"] is None else reference[i : i + 1],
            }
        )
        for i in range(4)
    ]
    for score, values in scores.items():
        assert np.array_equal(values, again[score])  # deterministic
        assert np.allclose(values, [a[score][0] for a in alone], atol=1e-12)  # batch-independent
    assert metric.cost(rows.shape[1]) >= 0
    with pytest.raises(ValueError, match="expected"):
        metric(**{**kw, "attributions": attributions[:, :2]})


def test_removal_curves_on_a_linear_output_follow_the_closed_form():
    """On f = w.x + b, replacing the top-k features of x by the draw z_j changes f by
    -sum_{top k} w_i (x_i - z_ji), so D(k) = f(x) - sum_{top k} w_i (x_i - zbar_i), zbar the mean
    of the m draws; insertion is the mirror image, I(k) = mean_j f(z_j) + the same sums."""
    model = linear_model(n_features=5, n_classes=2, background_size=60)
    rows = independent_table(6, 5, seed=9)
    targets = np.arange(6) % 2
    phi = model.shapley(rows, targets)
    draws = 7
    deletion = removal_curves(model, rows, targets, phi, draws=draws, seed=0, insert=False)
    insertion = removal_curves(model, rows, targets, phi, draws=draws, seed=0, insert=True)
    from benchmark.tabular import rank_features
    from benchmark.tabular.metrics import background_draws

    zbar = background_draws(model, rows, 0, draws, "removal").mean(1)
    order = rank_features(phi, rows, 0)
    w = model.weights[targets]
    gains = np.take_along_axis(w * (rows - zbar), order, axis=1)
    cumulative = np.concatenate([np.zeros((6, 1)), np.cumsum(gains, 1)], axis=1)
    fx = model.target_outputs(rows, targets)
    assert np.allclose(deletion, fx[:, None] - cumulative, atol=1e-10)
    f_z = fx - cumulative[:, -1]  # mean_j f(z_j)
    assert np.allclose(insertion, f_z[:, None] + cumulative, atol=1e-10)
    assert np.allclose(area(np.array([[1.0, 0.5, 0.0]])), 0.5)
    # Ranking by the realised gains w (x - zbar) makes D(k) pointwise minimal, so its AUC is at
    # most that of any other ranking (the true Shapley values, their reverse, noise).
    deletion_metric = create_metric("feature_deletion", draws=draws)

    def auc(a):
        return deletion_metric(model=model, rows=rows, targets=targets, attributions=a)[
            "deletion_auc"
        ]

    best = auc(w * (rows - zbar))
    noise = create_explainer("random").explain(model, rows, targets)
    for other in (phi, -phi, noise):
        assert (best <= auc(other) + 1e-12).all()
    assert (best < auc(-w * (rows - zbar))).all()


@pytest.mark.parametrize("name", ["feature_deletion", "feature_insertion"])
def test_the_curve_points_lie_on_the_curve_whose_area_is_the_auc(name):
    """5 features: the curve's points are at k/5, so f = 0.2, 0.4, ... are points and f = 0.1
    the midpoint of the first two; the AUC is the trapezoid area under the same polyline."""
    model = linear_model(n_features=5, n_classes=2, background_size=40)
    rows = independent_table(4, 5, seed=3)
    targets = np.arange(4) % 2
    phi = model.shapley(rows, targets)
    scores = create_metric(name, draws=5)(model=model, rows=rows, targets=targets, attributions=phi)
    curves = removal_curves(
        model, rows, targets, phi, draws=5, seed=0, insert=name == "feature_insertion"
    )
    order = name.removeprefix("feature_")
    assert np.allclose(scores[f"{order}@0.4"], curves[:, 2])
    assert np.allclose(scores[f"{order}@0.1"], curves[:, :2].mean(1))
    assert set(scores) == set(create_metric(name).higher_is_better)
    assert np.allclose(scores[f"{order}_auc"], area(curves))


def test_faithfulness_correlation_is_one_for_exact_shapley_values_with_the_mean_baseline():
    model = linear_model(n_features=6, n_classes=2, background_size=80)
    rows = independent_table(5, 6, seed=4)
    targets = np.arange(5) % 2
    phi = model.shapley(rows, targets)
    kw = {"model": model, "rows": rows, "targets": targets}
    mean = create_metric("feature_faithfulness_correlation", baseline="mean", subset_size=2)
    assert np.allclose(mean(**kw, attributions=phi)["faithfulness_correlation"], 1, atol=1e-12)
    drawn = create_metric("feature_faithfulness_correlation", subset_size=2)
    truth = drawn(**kw, attributions=phi)["faithfulness_correlation"]
    noise = create_explainer("random").explain(model, rows, targets)
    assert truth.mean() > 0.5 > drawn(**kw, attributions=noise)["faithfulness_correlation"].mean()
    constant = mean(**kw, attributions=np.ones_like(phi))["faithfulness_correlation"]
    assert np.isnan(constant).all()


def _agree(a, b, k):
    metric = create_metric("agreement", k=k)
    rows = np.zeros((1, len(a)))
    return metric(
        model=None,
        rows=rows,
        targets=np.zeros(1, dtype=np.int64),
        attributions=np.array([a], float),
        reference=np.array([b], float),
    )


def test_agreement_by_hand():
    a = [0.9, -0.5, 0.3, 0.1, 0.0]  # top-3 by |a|: 0, 1, 2
    b = [0.8, 0.2, -0.6, 0.05, 0.01]  # top-3 by |b|: 0, 2, 1
    s = {k: v[0] for k, v in _agree(a, b, 3).items()}
    assert s["feature_agreement"] == 1  # same three features
    assert s["rank_agreement"] == pytest.approx(1 / 3)  # only feature 0 in the same place
    assert s["sign_agreement"] == pytest.approx(1 / 3)  # features 1 and 2 flip sign
    assert s["signed_rank_agreement"] == pytest.approx(1 / 3)
    assert s["rank_correlation"] == pytest.approx(0.9)  # ranks of |.|: 5,4,3,2,1 vs 5,3,4,2,1
    same = {k: v[0] for k, v in _agree(a, a, 3).items()}
    assert all(v == pytest.approx(1) for v in same.values())
    flipped = {k: v[0] for k, v in _agree(a, [-x for x in a], 2).items()}
    assert flipped["feature_agreement"] == 1 and flipped["rank_agreement"] == 1
    assert flipped["sign_agreement"] == 0 and flipped["signed_rank_agreement"] == 0
    with pytest.raises(ValueError, match="needs reference"):
        create_metric("agreement")(
            model=None,
            rows=np.zeros((1, 3)),
            targets=np.zeros(1, dtype=np.int64),
            attributions=np.ones((1, 3)),
        )


def test_ground_truth_recovery_scores_exact_shapley_values_perfectly():
    model = linear_model(n_features=6, n_classes=2, background_size=40)
    assert np.allclose(model.background[:10].mean(0), 0)  # antithetic: prefixes have mean 0
    rows = independent_table(5, 6, seed=5)
    targets = np.arange(5) % 2
    truth = model.weights[targets] * rows  # w * (x - E_B x) with E_B x = 0
    metric = create_metric("ground_truth_recovery", k=3)
    kw = {"model": model, "rows": rows, "targets": targets}
    exact = metric(**kw, attributions=truth)
    assert np.allclose(exact["relative_error"], 0) and (exact["truth_feature_agreement"] == 1).all()
    kernel = create_explainer("shap_kernel", nsamples=64, background_size=10)
    recovered = metric(**kw, attributions=kernel.explain(model, rows, targets))
    assert recovered["relative_error"].max() < 1e-9  # 2^6 - 2 = 62 coalitions: exact
    noise = metric(**kw, attributions=create_explainer("random").explain(model, rows, targets))
    assert noise["relative_error"].mean() > 0.5
    flipped = metric(**kw, attributions=-truth)
    assert (
        np.allclose(flipped["relative_error"], 2) and (flipped["truth_sign_agreement"] == 0).all()
    )


def test_ground_truth_recovery_is_not_applicable_without_a_closed_form(tiny_model):
    reason = create_metric("ground_truth_recovery").supports(tiny_model)
    assert (reason is None) == (tiny_model.name == "linear")
