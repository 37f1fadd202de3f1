from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from metrics import create_metric
from tests.models import linear_toy


def _sigmoid(z):
    return 1 / (1 + math.exp(-z))


def _setup():
    # 1 channel, 2x4 image; weight +1 on the left half, -0.5 on the right half.
    weight = torch.tensor([[[1.0, 1.0, -0.5, -0.5], [1.0, 1.0, -0.5, -0.5]]])
    model = linear_toy(weight)
    images = torch.tensor([[[[0.5, 0.2, 1.0, 0.4], [0.1, 0.3, 0.6, 0.2]]]])
    saliency = torch.tensor([[[4.0, 3.0, 0.0, 0.0], [2.0, 1.0, 0.0, 0.0]]])  # left half salient
    return model, images, torch.tensor([0]), saliency


def test_hand_computed_values():
    model, images, targets, saliency = _setup()
    scores = create_metric("occlusion", q=0.5)(
        model=model, images=images, targets=targets, saliency=saliency
    )
    y = _sigmoid(0.5 + 0.2 + 0.1 + 0.3 - 0.5 * (1.0 + 0.4 + 0.6 + 0.2))  # sigmoid(0.0)
    o_b = _sigmoid(0.5 + 0.2 + 0.1 + 0.3)  # background (right half) filled with 0
    o_s = _sigmoid(-0.5 * (1.0 + 0.4 + 0.6 + 0.2))  # subject (left half) filled with 0
    assert o_b > y and scores["increase_b"].item() == 100.0
    assert scores["drop_b"].item() == 0.0
    assert scores["increase_s"].item() == 0.0
    assert scores["drop_s"].item() == pytest.approx(100 * (y - o_s) / y, rel=1e-6)


def test_black_fill_is_zero_pixels():
    model, images, targets, saliency = _setup()
    scores = create_metric("occlusion", q=0.5, fill="black")(
        model=model, images=images, targets=targets, saliency=saliency
    )
    y = _sigmoid(0.0)
    black = -1.0  # (0 - mean 0.5) / std 0.5
    o_s = _sigmoid(4 * black - 0.5 * (1.0 + 0.4 + 0.6 + 0.2))  # subject black, right kept
    assert scores["drop_s"].item() == pytest.approx(100 * (y - o_s) / y, rel=1e-6)


def test_average_drop_divides_by_y_unlike_grad_cam_drop_in_confidence():
    from pytorch_grad_cam.metrics.cam_mult_image import DropInConfidence
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    model, images, targets, saliency = _setup()
    scores = create_metric("occlusion", q=0.5)(
        model=model, images=images, targets=targets, saliency=saliency
    )
    # pytorch-grad-cam multiplies the normalised input by the cam: a 0/1 cam of the background is
    # our occlusion s with the mean fill.
    background = (saliency == 0).float().numpy()
    theirs = DropInConfidence()(images, background, [ClassifierOutputSoftmaxTarget(0)], model.net)
    y = 0.5  # sigmoid(0)
    assert scores["drop_s"].item() == pytest.approx(100 * float(theirs[0]) / y, rel=1e-5)
    assert scores["drop_s"].item() != pytest.approx(100 * float(theirs[0]), rel=1e-2)


def test_subject_is_exactly_floor_q_n_on_constant_map(small_cnn):
    images = torch.randn(2, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    metric = create_metric("occlusion", q=0.25)
    a = metric(
        model=small_cnn, images=images, targets=torch.tensor([0, 1]), saliency=torch.ones(2, 20, 20)
    )
    # b and s are complementary occlusions of exactly 100 pixels: not the whole image, not nothing
    assert set(a) == set(metric.higher_is_better)
    assert all(torch.isfinite(v).all() for v in a.values())


def test_blur_fill_and_unknown_fill():
    with pytest.raises(ValueError, match="unknown fill"):
        create_metric("occlusion", fill="grey")
    model, images, targets, saliency = _setup()
    scores = create_metric("occlusion", q=0.5, fill="blur", blur_sigma=1.0)(
        model=model, images=images, targets=targets, saliency=saliency
    )
    assert np.isfinite(scores["drop_s"].item())
