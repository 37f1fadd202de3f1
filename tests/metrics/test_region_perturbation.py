from __future__ import annotations

import numpy as np
import pytest
import torch

from metrics import create_metric, rank_pixels
from metrics._curves import substrate
from metrics.region_perturbation import region_labels
from tests.metrics.test_contract import assert_batch_independent
from tests.metrics.test_pixel_flipping import kept_fraction
from tests.models import mlp_head_cnn

TARGET = torch.zeros(8, 8, dtype=torch.bool)  # two of the sixteen 2x2 regions
TARGET[0:2, 0:2] = True
TARGET[4:6, 4:6] = True
BEST = TARGET.float() * 10 + torch.arange(64.0).view(8, 8) / 1000  # target regions first


def _aopc(saliency, **params):
    model, image = kept_fraction(TARGET)
    metric = create_metric("region_perturbation", region_size=2, **params)
    scores = metric(model=model, images=image, targets=torch.tensor([0]), saliency=saliency[None])
    return scores["aopc"].item()


@pytest.mark.parametrize("substrate_kind", ["uniform", "mean", "black", "minimum", "blur"])
def test_closed_form_on_the_kept_fraction_model(substrate_kind):
    # best map: a = 1, 0.5, 0, 0, ...; aopc = mean over k = 0..L of (a_0 - a_k)
    assert _aopc(BEST, steps=16, substrate=substrate_kind) == pytest.approx((0.5 + 15) / 17)
    assert _aopc(BEST, steps=3, substrate=substrate_kind) == pytest.approx((0.5 + 1 + 1) / 4)
    assert _aopc(BEST, steps=100, substrate=substrate_kind) == pytest.approx((0.5 + 15) / 17)
    # worst map: the target regions come last, a_15 = 0.5, a_16 = 0
    assert _aopc(-BEST, steps=16, substrate=substrate_kind) == pytest.approx((0.5 + 1) / 17)


def test_regions_sum_the_map_on_quantus_centred_grid():
    # 10 = 2 * 4 + 2: Quantus pads 1 before and 1 after, so the first region is 3 pixels wide
    labels = region_labels(10, 7, 4)
    assert labels[:, 0].tolist() == [0, 0, 0, 2, 2, 2, 2, 4, 4, 4]
    assert labels[0].tolist() == [0, 0, 0, 0, 1, 1, 1]  # 7 = 4 + 3: 0 before, 1 after
    # one pixel of a 2x2 region outweighs three of another: regions rank by their map's sum
    saliency = torch.zeros(8, 8)
    saliency[0, 0] = 4.0  # region of the first target block
    saliency[4:6, 4:5] = 1.0  # two pixels of the second
    saliency[2:4, 2:4] = 0.9  # a whole non-target region, sum 3.6
    a_after = [1, 0.5, 0.5, 0]  # k = 0..3: the first block, the 3.6 region, the second block
    assert _aopc(saliency, steps=3, substrate="mean") == pytest.approx(
        np.mean([1 - a for a in a_after])
    )


def test_tied_and_constant_maps_follow_the_seeded_region_ranking():
    assert _aopc(TARGET.float(), steps=16) == pytest.approx((0.5 + 15) / 17)  # ties inside
    model, image = kept_fraction(TARGET)
    target_regions = {int(r) for r in region_labels(8, 8, 2)[TARGET].unique()}
    for seed in (0, 1):
        order = rank_pixels(torch.ones(1, 1, 16), image, seed)[0].tolist()
        removed = np.cumsum([r in target_regions for r in order]) / 2
        expected = np.mean(np.concatenate([[0.0], removed[:4]]))  # 1 - a_k, k = 0..4
        assert _aopc(torch.ones(8, 8), steps=4, seed=seed) == pytest.approx(expected)


def test_noise_is_seeded_per_image_in_pixel_space(small_cnn):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(3, 3, 12, 12, generator=g)
    noise = substrate(small_cnn, images, "uniform", 11, 5.0, seed=0)
    pixels = small_cnn.denormalize(noise)
    assert pixels.min() >= 0 and pixels.max() < 1 + 1e-6
    alone = substrate(small_cnn, images[1:2], "uniform", 11, 5.0, seed=0)
    torch.testing.assert_close(alone[0], noise[1])  # the same noise in any batch
    assert not torch.equal(substrate(small_cnn, images, "uniform", 11, 5.0, seed=1), noise)
    saliency, targets = torch.rand(3, 12, 12, generator=g), torch.tensor([0, 1, 2])
    metric = create_metric("region_perturbation", region_size=3, steps=8)
    assert_batch_independent(metric, small_cnn, images, targets, saliency)


def test_bad_parameters():
    with pytest.raises(ValueError, match="unknown substrate"):
        create_metric("region_perturbation", substrate="white")
    with pytest.raises(ValueError, match="unknown output"):
        create_metric("region_perturbation", output="odds")
    with pytest.raises(ValueError, match="at least 1"):
        create_metric("region_perturbation", region_size=0)


def test_agrees_with_quantus_curve_on_its_black_baseline():
    quantus = pytest.importorskip("quantus")
    model = mlp_head_cnn(in_chans=1, classes=3)
    g = torch.Generator().manual_seed(0)
    images, targets = torch.randn(3, 1, 10, 10, generator=g), torch.tensor([0, 2, 1])
    saliency = torch.rand(3, 10, 10, generator=g)  # positive, no tied region sums
    theirs = quantus.RegionPerturbation(
        patch_size=4, regions_evaluation=5, disable_warnings=True, return_aggregate=False
    )(
        model=model.net,
        x_batch=images.numpy(),
        y_batch=targets.numpy(),
        a_batch=saliency[:, None].numpy().copy(),
        device="cpu",
        softmax=True,
    )
    ours = create_metric("region_perturbation", region_size=4, steps=5, substrate="minimum")(
        model=model, images=images, targets=targets, saliency=saliency
    )
    # Quantus's curve f(x) - f(x^k), k = 1..5, without the k = 0 point; ours averages k = 0..5
    expected = np.asarray(theirs).sum(1) / 6
    np.testing.assert_allclose(ours["aopc"].numpy(), expected, rtol=1e-5, atol=1e-7)
