"""Closed forms of max-sensitivity on a linear model (Yeh et al. 2019): the gradient map does not
move, gradient x input moves by exactly W . e; the perturbations lie in the pixel-unit ball."""

from __future__ import annotations

import math

import torch

import metrics
from explainers import create_explainer
from tests.models import linear_classifier, pixel_weights

SHAPE = (2, 6, 6)


def _setup(explainer_name, **params):
    model = linear_classifier(SHAPE, 3, seed=0, std=0.25)
    images = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(1))
    targets = torch.tensor([0, 2, 1])
    explainer = create_explainer(explainer_name, **params)
    maps = explainer.explain(model, images.clone(), targets.clone())
    return model, images, targets, explainer, maps


def _score(metric, model, images, targets, explainer, maps):
    return metric(model=model, images=images, targets=targets, saliency=maps, explainer=explainer)


def test_the_gradient_map_of_a_linear_model_has_sensitivity_zero():
    model, images, targets, explainer, maps = _setup("captum_saliency")
    metric = metrics.create_metric("max_sensitivity", samples=5)
    scores = _score(metric, model, images, targets, explainer, maps)
    torch.testing.assert_close(scores["max_sensitivity"], torch.zeros(3), atol=1e-7, rtol=0)


def test_gradient_x_input_of_a_linear_model_by_closed_form():
    """Phi(x) = sum_c W_tc x_c, so Phi(x + e) - Phi(x) = sum_c W_tc e_c, exactly."""
    model, images, targets, explainer, maps = _setup("gradient_pixel", signed=True)
    metric = metrics.create_metric("max_sensitivity", samples=6, radius=0.05, seed=4)
    noise = metric.perturbations(model, images)  # [B, samples, C, H, W], normalised space
    weights = pixel_weights(model)[targets]  # [B, C, H, W]
    change = (weights[:, None] * noise).sum(2).flatten(2).norm(dim=2)  # [B, samples]
    expected = change.amax(1) / (weights * images).sum(1).flatten(1).norm(dim=1)
    scores = _score(metric, model, images, targets, explainer, maps)
    torch.testing.assert_close(scores["max_sensitivity"], expected.float(), rtol=1e-4, atol=1e-6)


def test_perturbations_fill_the_ball_of_the_radius_in_pixel_units():
    model, images, *_ = _setup("captum_saliency")
    metric = metrics.create_metric("max_sensitivity", samples=50, radius=0.02)
    pixels = metric.perturbations(model, images) * 0.25  # back to [0, 1] pixel units (std 0.25)
    assert pixels.abs().max() <= 0.02 + 1e-7 and pixels.abs().max() > 0.0199
    assert abs(float(pixels.mean())) < 1e-3  # uniform, centred
    other = metrics.create_metric("max_sensitivity", samples=50, radius=0.02, seed=1)
    assert not torch.equal(other.perturbations(model, images), metric.perturbations(model, images))


def test_an_all_zero_map_is_not_applicable():
    model, images, targets, explainer, maps = _setup("captum_saliency")
    metric = metrics.create_metric("max_sensitivity", samples=2)
    maps[1] = 0.0
    scores = _score(metric, model, images, targets, explainer, maps)
    assert (
        math.isnan(scores["max_sensitivity"][1])
        and torch.isfinite(scores["max_sensitivity"][[0, 2]]).all()
    )
