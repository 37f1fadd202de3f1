"""The Quantus adapter (metrics/quantus.py): what is registered and excluded, cost() against counted
forwards, the traps it fixes, and cross-checks of its plugins against the project's own metrics
of the same definition on the same maps and inputs."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

import metrics
from metrics import create_metric
from metrics.faithfulness_correlation import correlation
from tests.metrics.test_contract import _create
from tests.models import mlp_head_cnn

quantus = pytest.importorskip("quantus")
adapter = pytest.importorskip("metrics.quantus")

PLUGINS = metrics.list_metrics("quantus_*")


def _score(name, model, images, targets, saliency, masks=None, **params):
    metric = create_metric(name, **params)
    scores = metric(model=model, images=images, targets=targets, saliency=saliency, masks=masks)
    return scores[next(iter(metric.higher_is_better))]


def _inputs(n=4, size=12, channels=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, channels, size, size, generator=g)
    saliency = torch.rand(n, size, size, generator=g)  # no ties
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    masks[:, 2:8, 3:9] = True
    masks[1, :, :] = False
    masks[1, 6:11, 0:5] = True
    return images, torch.tensor([0, 3, 1, 4][:n]), saliency, masks


# -- what is registered ----------------------------------------------------------------------------


def test_every_quantus_metric_is_registered_or_excluded_with_a_reason():
    classes = adapter._quantus_classes()
    assert set(adapter.PLUGINS) | set(adapter.EXCLUDED) == set(classes)
    assert not set(adapter.PLUGINS) & set(adapter.EXCLUDED)
    assert sorted(PLUGINS) == sorted(
        adapter.FAMILY_PREFIX + adapter.snake_case(name) for name in adapter.PLUGINS
    )
    for name, reason in adapter.EXCLUDED.items():
        assert reason and reason[0].islower(), name
    # everything that re-explains is out: this contract passes no explainer
    for name, cls in classes.items():
        if cls.evaluation_category.value in ("Randomisation", "Robustness"):
            assert name in adapter.EXCLUDED


@pytest.mark.parametrize("name", PLUGINS)
def test_plugin_records_quantus_options_and_version(name):
    cls = metrics.registry.get(name)
    metric = metrics.create_metric(name)
    params = metric.params()
    constructor = inspect.signature(cls.quantus_class.__init__).parameters
    assert set(cls.options) <= set(constructor) and set(cls.options) <= set(params)
    assert quantus.__version__ in cls.version
    assert "softmax" in params and "random_seed" in params and "batch_size" not in params
    assert cls.needs_masks == (cls.quantus_class.evaluation_category.value == "Localisation")


def test_top_k_larger_than_the_image_is_refused_with_the_setting_to_change():
    metric = create_metric("quantus_top_k_intersection")  # Quantus's default k = 1000
    reason = metric.supports((1, 28, 28))
    assert "784 pixels" in reason and "metric_params.quantus_top_k_intersection" in reason
    assert metric.supports((3, 224, 224)) is None
    assert create_metric("quantus_top_k_intersection", k=20).supports((1, 28, 28)) is None


def test_snake_case_names():
    cases = {"TopKIntersection": "top_k_intersection", "IROF": "irof", "AUC": "auc"}
    cases |= {"SensitivityN": "sensitivity_n", "MPRT": "mprt", "EfficientMPRT": "efficient_mprt"}
    assert {k: adapter.snake_case(k) for k in cases} == cases


def test_function_options_by_name():
    metric = create_metric(
        "quantus_faithfulness_correlation", similarity_func="correlation_spearman"
    )
    assert metric.quantus_options()["similarity_func"].__name__ == "correlation_spearman"
    with pytest.raises(ValueError, match="not a function of quantus"):
        create_metric("quantus_faithfulness_correlation", similarity_func="pearson_typo")


@pytest.mark.parametrize("name", PLUGINS)
def test_cost_is_the_counted_forwards(name):
    """cost() at 224 px comes from FORWARDS; the same formula at a probe size equals the images
    the metric actually sends through the model."""
    metric = _create(name)
    shape = (3, 12, 12)
    counted = adapter.count_forwards(metric, shape)
    formula = adapter.FORWARDS.get(metric.quantus_class.__name__)
    expected = formula(metric.quantus_options(), shape) if formula else 0
    assert counted == expected


# -- the excluded metrics: their reasons hold ------------------------------------------------------


def _raw(cls, model, images, targets, saliency, masks=None, **options):
    with adapter._quantus_compat():
        return cls(disable_warnings=True, return_aggregate=False, **options)(
            model=adapter._Logits(model),
            x_batch=images.numpy().copy(),
            y_batch=targets.numpy(),
            a_batch=saliency[:, None].numpy().copy(),
            s_batch=None if masks is None else masks[:, None].numpy().copy(),
            device="cpu",
        )


def test_irof_and_road_fail_on_rgb(small_cnn):
    images, targets, saliency, _ = _inputs(size=16)
    with pytest.raises(AssertionError, match="shape of arr must be the same as the mask"):
        _raw(quantus.IROF, small_cnn, images, targets, saliency)
    with pytest.raises(IndexError):
        _raw(quantus.ROAD, small_cnn, images, targets, saliency)
    assert {"IROF", "ROAD"} <= set(adapter.EXCLUDED)


def test_sensitivity_n_is_not_one_number_per_image(small_cnn):
    images, targets, saliency, _ = _inputs()
    out = _raw(quantus.SensitivityN, small_cnn, images, targets, saliency, features_in_step=48)
    assert len(out) != len(images)
    assert "SensitivityN" in adapter.EXCLUDED


def test_sufficiency_is_batch_dependent(small_cnn):
    """Sufficiency scores an image by the predictions of the other images whose maps are near its
    own: two pairs of near-copies score 1 together and 0 alone."""
    images, targets, saliency, _ = _inputs()
    g = torch.Generator().manual_seed(1)
    pairs = [0, 0, 1, 1]
    images, saliency = images[pairs], saliency[pairs] + 0.01 * torch.rand(4, 12, 12, generator=g)
    batched = _raw(quantus.Sufficiency, small_cnn, images, targets, saliency)
    alone = _raw(quantus.Sufficiency, small_cnn, images[:1], targets[:1], saliency[:1])
    assert np.allclose(batched, 1.0) and np.allclose(alone, 0.0)
    assert "Sufficiency" in adapter.EXCLUDED


# -- traps the adapter fixes -------------------------------------------------------------------------


def test_normalisation_is_per_image_not_over_the_batch(small_cnn):
    """Quantus's normalise_by_max divides by the batch's largest |value|: EffectiveComplexity (the
    count of normalised |values| above eps) then depends on the batch-mates; the plugin's does not."""
    images, targets, saliency, _ = _inputs()
    saliency = saliency * torch.tensor([1.0, 5.0, 1.0, 1.0]).view(-1, 1, 1)
    raw = _raw(quantus.EffectiveComplexity, small_cnn, images, targets, saliency, eps=0.5)
    alone = [
        _raw(
            quantus.EffectiveComplexity,
            small_cnn,
            images[[i]],
            targets[[i]],
            saliency[[i]],
            eps=0.5,
        )[0]
        for i in range(4)
    ]
    assert not np.allclose(raw, alone)
    ours = _score("quantus_effective_complexity", small_cnn, images, targets, saliency, eps=0.5)
    np.testing.assert_array_equal(ours.numpy(), np.asarray(alone, dtype=np.float32))


def test_random_metric_is_seeded_and_leaves_global_state(small_cnn):
    images, targets, saliency, _ = _inputs()
    np.random.seed(5)
    torch.manual_seed(5)
    before = np.random.get_state()[1].copy(), torch.get_rng_state()
    first = _score("quantus_faithfulness_correlation", small_cnn, images, targets, saliency,
                   nr_runs=8, subset_size=20)  # fmt: skip
    assert np.array_equal(np.random.get_state()[1], before[0])
    assert torch.equal(torch.get_rng_state(), before[1])
    again = _score("quantus_faithfulness_correlation", small_cnn, images, targets, saliency,
                   nr_runs=8, subset_size=20)  # fmt: skip
    other = _score("quantus_faithfulness_correlation", small_cnn, images, targets, saliency,
                   nr_runs=8, subset_size=20, random_seed=1)  # fmt: skip
    torch.testing.assert_close(first, again)
    assert not torch.allclose(first, other)


def test_empty_masks_are_nan_not_hits(small_cnn):
    images, targets, saliency, masks = _inputs()
    masks[2] = False
    raw = _raw(quantus.PointingGame, small_cnn, images, targets, saliency, masks)
    assert raw[2]  # quantus 0.6.0 counts an empty mask as a hit
    ours = _score("quantus_pointing_game", small_cnn, images, targets, saliency, masks)
    assert torch.isnan(ours[2]) and torch.isfinite(ours[[0, 1, 3]]).all()


# -- cross-checks against the project's own metrics ---------------------------------------------------


def _signed(saliency):
    return saliency - 0.3  # negative values too


CROSS = [  # (project metric and params, quantus plugin, maps, scale, atol, what differs)
    ("sparseness", {}, "quantus_sparseness", "signed", 1.0, 1e-6),  # Quantus adds 1e-7
    ("complexity", {}, "quantus_complexity", "signed", 1.0, 1e-6),  # Quantus: 1e-12 in the log
    ("relevance_mass_accuracy", {"relevance": "signed"}, "quantus_relevance_mass_accuracy",
     "signed", 1.0, 1e-6),
    ("relevance_mass_accuracy", {}, "quantus_relevance_mass_accuracy", "positive", 1.0, 1e-6),
    ("relevance_rank_accuracy", {}, "quantus_relevance_rank_accuracy", "signed", 1.0, 1e-6),
    # Quantus's pointing game has no tolerance: a hit is a maximum inside the mask
    ("pointing_game", {"tolerance": 1.0}, "quantus_pointing_game", "signed", 100.0, 1e-6),
    # attribution localisation (abs, unweighted) is the share of mass inside the mask
    ("energy_pointing_game", {}, "quantus_attribution_localisation", "positive", 100.0, 1e-6),
]  # fmt: skip


@pytest.mark.parametrize("ours, params, theirs, maps, scale, atol", CROSS)
def test_agrees_with_the_project_metric(ours, params, theirs, maps, scale, atol, small_cnn):
    images, targets, saliency, masks = _inputs()
    saliency = _signed(saliency) if maps == "signed" else saliency
    mine = _score(ours, small_cnn, images, targets, saliency, masks, **params)
    plugin = _score(theirs, small_cnn, images, targets, saliency, masks)
    np.testing.assert_allclose(mine.numpy() / scale, plugin.numpy(), rtol=0, atol=atol)


def test_pointing_game_differs_on_tied_maxima(small_cnn):
    """Quantus counts any of several tied maxima; ours takes the first in row-major order."""
    images, targets, saliency, masks = (t[:1] for t in _inputs())
    saliency[:] = 0.0
    saliency[0, 0, 0] = saliency[0, 4, 4] = 1.0  # first maximum outside the mask, second inside
    mine = _score("pointing_game", small_cnn, images, targets, saliency, masks, tolerance=1.0)
    plugin = _score("quantus_pointing_game", small_cnn, images, targets, saliency, masks)
    assert mine.item() == 0.0 and plugin.item() == 1.0


def test_faithfulness_correlation_on_the_same_subsets(small_cnn, monkeypatch):
    images, targets, saliency, _ = _inputs(n=3)
    runs, size = 10, 30
    drawn = []
    choice = np.random.choice
    monkeypatch.setattr(
        np.random, "choice", lambda *a, **k: drawn.append(choice(*a, **k)) or drawn[-1]
    )
    plugin = _score("quantus_faithfulness_correlation", small_cnn, images, targets, saliency,
                    nr_runs=runs, subset_size=size)  # fmt: skip
    monkeypatch.undo()
    # the plugin is seen to draw on its first (batched) call, then reruns one image at a time
    subsets = torch.from_numpy(np.array(drawn[-3 * runs :])).view(3, runs, size)
    metric = create_metric(
        "faithfulness_correlation", runs=runs, subset_size=size, features="value", baseline="min"
    )
    mine = correlation(metric, small_cnn, images, targets, saliency, subsets)
    np.testing.assert_allclose(mine.numpy(), plugin.numpy(), rtol=0, atol=1e-6)


def test_deletion_and_pixel_flipping_in_two_steps():
    """PixelFlipping's area (trapezoid, dx = 1) over the curve after each step, in two steps of
    half the pixels, black = the image's minimum, against the project's deletion AUC. With
    ``a_0`` the unperturbed probability, deletion in one step is ``D_1 = (a_0 + a_2)/2`` and in two
    ``D_2 = (a_0/2 + a_1 + a_2/2)/2``, so PixelFlipping's ``(a_1 + a_2)/2 = (2 D_2 + D_1 - a_0)/2``.
    One channel (Quantus flips channel values, ranked by the map broadcast over channels) and a
    pixel at 0 in every image, so the image's minimum is black."""
    model = mlp_head_cnn(in_chans=1, classes=3)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 1, 12, 12, generator=g)
    images[:, :, 0, 0] = 0.0  # pixel black; mean 0, std 1: the normalised value too
    targets, saliency = torch.tensor([0, 2, 1]), torch.rand(3, 12, 12, generator=g)
    plugin = _score("quantus_pixel_flipping", model, images, targets, saliency,
                    features_in_step=72)  # fmt: skip
    d1, d2 = (_score("deletion", model, images, targets, saliency, steps=s, substrate="black")
              for s in (1, 2))  # fmt: skip
    a0 = metrics.target_probabilities(model, images, targets, 64).double()
    np.testing.assert_allclose(((2 * d2 + d1 - a0) / 2).numpy(), plugin.numpy(), atol=1e-6)
