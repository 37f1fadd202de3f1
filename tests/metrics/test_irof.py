from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from metrics import create_metric
from metrics.irof import Irof
from tests.models import linear_toy, mlp_head_cnn


def _sigmoid(z):
    return 1 / (1 + math.exp(-z))


def test_closed_form_on_a_linear_toy_with_a_known_segmentation(monkeypatch):
    # Two segments, the rows of a 2x2 image: contributions w*x are 1 (row 0) and 2 (row 1).
    monkeypatch.setattr(Irof, "segments", lambda self, model, image: np.array([[0, 0], [1, 1]]))
    model = linear_toy(torch.tensor([[[2.0, -1.0], [1.0, 0.5]]]))
    images = torch.tensor([[[[1.0, 1.0], [1.0, 2.0]]]])
    saliency = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]])  # row 1 (mean 2.5) is removed first
    call = dict(model=model, images=images, targets=torch.tensor([0]), saliency=saliency)
    p1, p2 = _sigmoid(1.0) / _sigmoid(3.0), _sigmoid(0.0) / _sigmoid(3.0)
    irof = create_metric("irof")(**call)["irof"].item()
    assert irof == pytest.approx(1 - (0.5 + p1 + p2 / 2) / 2, rel=1e-6)
    quantus_aoc = create_metric("irof", aoc="quantus")(**call)["irof"].item()
    assert quantus_aoc == pytest.approx(2 - (p1 + p2) / 2, rel=1e-6)
    # current_mean: row 1 goes to the image mean 1.25, then row 0 to the mean of (1, 1, 1.25, 1.25)
    current = create_metric("irof", baseline="current_mean")(**call)["irof"].item()
    q1 = _sigmoid(1.0 + 1.25 * 1.5) / _sigmoid(3.0)
    q2 = _sigmoid(1.125 * 1.0 + 1.25 * 1.5) / _sigmoid(3.0)
    assert current == pytest.approx(1 - (0.5 + q1 + q2 / 2) / 2, rel=1e-6)


def test_bad_parameters():
    for params in ({"baseline": "noise"}, {"aoc": "auc"}, {"segment_space": "lab"}):
        with pytest.raises(ValueError, match="unknown"):
            create_metric("irof", **params)


def _quantus_irof(model, images, targets, saliency):
    quantus = pytest.importorskip("quantus")
    return quantus.IROF(return_aggregate=False, disable_warnings=True)(
        model=model.net,
        x_batch=images.numpy(),
        y_batch=targets.numpy(),
        a_batch=saliency[:, None].numpy().copy(),
        device="cpu",
    )


def _smooth(channels, g):
    coarse = torch.randn(3, channels, 4, 4, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(16, 16), mode="bilinear")


def test_agrees_with_quantus_on_its_settings(monkeypatch):
    # quantus 0.6.0 calls np.trapz, which numpy 2.4 removed: lend it np.trapezoid (same rule)
    monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)
    model = mlp_head_cnn(in_chans=1, classes=3)  # Quantus's IROF runs on one channel only
    g = torch.Generator().manual_seed(0)
    images, targets = _smooth(1, g), torch.tensor([0, 2, 1])
    saliency = torch.rand(3, 16, 16, generator=g)  # no tied segment means
    # Quantus's "mean" baseline is the mean over the whole batch (get_baseline_value is called
    # without batched=True), so its score of an image depends on the other images: one at a time
    # it is the image's own mean, our current_mean.
    one = [slice(i, i + 1) for i in range(3)]
    theirs = np.concatenate([_quantus_irof(model, images[i], targets[i], saliency[i]) for i in one])
    batched = np.asarray(_quantus_irof(model, images, targets, saliency))
    assert not np.allclose(batched, theirs, rtol=1e-3)
    metric = create_metric(
        "irof", baseline="current_mean", aoc="quantus", segment_space="normalised"
    )
    ours = metric(model=model, images=images, targets=targets, saliency=saliency)["irof"]
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-4)
    # the default (pixel-space SLIC, mean colour, normalised area) is another number
    default = create_metric("irof")(model=model, images=images, targets=targets, saliency=saliency)
    assert not np.allclose(default["irof"].numpy(), theirs)


def test_quantus_irof_fails_on_rgb_where_ours_runs(small_cnn):
    # quantus 0.6.0 builds the removal mask [B,1,H,W] and asserts it has the input's shape
    g = torch.Generator().manual_seed(0)
    images, targets = _smooth(3, g), torch.tensor([0, 3, 1])
    saliency = torch.rand(3, 16, 16, generator=g)
    with pytest.raises(AssertionError, match="shape of arr must be the same as the mask"):
        _quantus_irof(small_cnn, images, targets, saliency)
    ours = create_metric("irof")(model=small_cnn, images=images, targets=targets, saliency=saliency)
    assert torch.isfinite(ours["irof"]).all()
