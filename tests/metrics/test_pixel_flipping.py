from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.models import Classifier
from metrics import create_metric, rank_pixels
from tests.metrics.test_contract import assert_batch_independent
from tests.models import mlp_head_cnn


class KeptFraction(nn.Module):
    """p_0 = the fraction of the target pixels still at their value 1 (every channel), p_1 = the
    rest: logits (log p_0, log p_1), so the softmax gives them back exactly."""

    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("target", target)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept = (x == 1).all(1).float()
        p = (kept * self.target).flatten(1).sum(1) / self.target.sum()
        return torch.stack([p.log(), (1 - p).log()], 1)


def kept_fraction(target: torch.Tensor, channels: int = 3) -> tuple[Classifier, torch.Tensor]:
    """The model and its image: 1 on the target pixels, 0 elsewhere (normalised space), so every
    substrate (0, -1, the minimum 0, noise in [-1, 1)) removes a target pixel."""
    height, width = target.shape
    model = Classifier(
        KeptFraction(target.float()),
        (0.5,) * channels,
        (0.5,) * channels,
        (channels, *target.shape),
    )
    image = target.float().expand(channels, height, width)[None].clone()
    return model, image


TARGET = torch.zeros(4, 4, dtype=torch.bool)
TARGET[1:3, 1:3] = True  # t = 4 of n = 16 pixels
BEST = TARGET.float() * 10 + torch.arange(16.0).view(4, 4) / 100  # target first, no ties


def _flip(saliency, **params):
    model, image = kept_fraction(TARGET)
    metric = create_metric("pixel_flipping", **params)
    return metric(model=model, images=image, targets=torch.tensor([0]), saliency=saliency[None])


@pytest.mark.parametrize("substrate", ["minimum", "mean", "black", "uniform"])
def test_closed_form_on_the_kept_fraction_model(substrate):
    t, n = 4, 16
    # one pixel per step: a_k = max(0, 1 - k/t), auc = t / (2n); the worst map: 1 - t / (2n)
    best = _flip(BEST, steps=n, substrate=substrate)["auc"].item()
    assert best == pytest.approx(t / (2 * n))
    worst = _flip(-BEST, steps=n, substrate=substrate)["auc"].item()
    assert worst == pytest.approx(1 - t / (2 * n))
    # Quantus's area: np.trapz(a_1..a_n, dx=1) = (t-1)/2 - (1 - 1/t)/2
    quantus = _flip(BEST, steps=n, substrate=substrate, auc="quantus")["auc"].item()
    assert quantus == pytest.approx((t - 1) / 2 - (1 - 1 / t) / 2)
    # two pixels per step, points 0, 2, ..., 16 of the curve: a = 1, 0.5, 0, ..., 0
    two = _flip(BEST, steps=n // 2, substrate=substrate)["auc"].item()
    assert two == pytest.approx((1 / 2 + 0.5) / 8)


def test_ties_and_constant_maps_follow_the_seeded_ranking():
    # tied within the target and within the rest: every tie-break gives the best curve
    assert _flip(TARGET.float(), steps=16)["auc"].item() == pytest.approx(4 / 32)
    model, image = kept_fraction(TARGET)
    constant = torch.ones(1, 4, 4)
    for seed in (0, 1, 2):
        order = rank_pixels(constant, image, seed)[0]
        removed = TARGET.flatten()[order].float().cumsum(0)
        curve = torch.cat([torch.ones(1), 1 - removed / 4])
        expected = (curve.sum() - curve[0] / 2 - curve[-1] / 2) / 16
        got = _flip(constant[0], steps=16, seed=seed)["auc"].item()
        assert got == pytest.approx(expected.item())


def test_batch_independent_with_the_per_image_minimum(small_cnn):
    g = torch.Generator().manual_seed(3)
    images = torch.randn(4, 3, 10, 10, generator=g)
    images[2] -= 5  # another minimum: Quantus's "black" is the image's own
    saliency, targets = torch.rand(4, 10, 10, generator=g), torch.tensor([0, 1, 2, 3])
    metric = create_metric("pixel_flipping", steps=10)
    assert_batch_independent(metric, small_cnn, images, targets, saliency)


def test_bad_parameters():
    with pytest.raises(ValueError, match="unknown auc"):
        create_metric("pixel_flipping", auc="sum")
    with pytest.raises(ValueError, match="unknown substrate"):
        create_metric("pixel_flipping", substrate="white")


def test_agrees_with_quantus_on_one_channel_images(monkeypatch):
    quantus = pytest.importorskip("quantus")
    monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)  # gone in numpy 2.4
    model = mlp_head_cnn(in_chans=1, classes=3)
    g = torch.Generator().manual_seed(0)
    images, targets = torch.randn(3, 1, 8, 8, generator=g), torch.tensor([0, 2, 1])
    saliency = torch.rand(
        3, 8, 8, generator=g
    )  # positive and tie-free: Quantus's max-normalise keeps the order
    theirs = quantus.PixelFlipping(
        features_in_step=4, return_auc_per_sample=True, disable_warnings=True
    )(
        model=model.net,
        x_batch=images.numpy(),
        y_batch=targets.numpy(),
        a_batch=saliency[:, None].numpy().copy(),
        device="cpu",
        softmax=True,
    )
    ours = create_metric("pixel_flipping", steps=16, auc="quantus")(
        model=model, images=images, targets=targets, saliency=saliency
    )
    np.testing.assert_allclose(ours["auc"].numpy(), np.asarray(theirs), rtol=1e-5)
