"""RISE: the formula against a direct one-mask-at-a-time implementation, its expectation on a model
whose probability is linear in one region's kept fraction, reproducibility and batch independence."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import explainers
from benchmark.models import Classifier
from explainers import generators
from explainers.rise import draw_masks, smooth_masks
from tests.models import small_cnn


def _direct_rise(model, image, target, seed, count, grid, probability):
    """The paper's recipe, one mask at a time, drawn in the order the plugin documents."""
    height, width = image.shape[-2:]
    g = generators(image[None], seed)[0]
    cell_h, cell_w = math.ceil(height / grid), math.ceil(width / grid)
    grids = torch.rand(count, grid, grid, generator=g) < probability
    rows = torch.randint(0, cell_h, (count,), generator=g)
    cols = torch.randint(0, cell_w, (count,), generator=g)
    total = torch.zeros(height, width, dtype=torch.float64)
    for i in range(count):
        up = F.interpolate(
            grids[i][None, None].float(),
            size=((grid + 1) * cell_h, (grid + 1) * cell_w),
            mode="bilinear",
            align_corners=False,
        )[0, 0]
        mask = up[rows[i] : rows[i] + height, cols[i] : cols[i] + width]
        probability_c = F.softmax(model(image[None] * mask), dim=1)[0, target]
        total += probability_c.double() * mask.double()
    return (total / (count * probability)).float()


def test_rise_equals_the_formula_computed_one_mask_at_a_time():
    model = small_cnn()
    g = torch.Generator().manual_seed(1)
    images = torch.randn(2, 3, 20, 27, generator=g)  # s = 6 divides neither side
    targets = torch.tensor([2, 0])
    params = {"num_masks": 50, "grid": 6, "keep_probability": 0.3, "seed": 5}
    maps = explainers.create_explainer("rise", batch_size=16, **params).explain(
        model, images, targets
    )
    for i in range(2):
        expected = _direct_rise(
            model, images[i], int(targets[i]), 5, 50, params["grid"], params["keep_probability"]
        )
        torch.testing.assert_close(maps[i], expected, rtol=1e-5, atol=1e-6)


class _RegionFraction(nn.Module):
    """p_0 = a + b * (mean of x over columns 0..7): on an all-ones input masked by M, the
    probability is linear in the region's kept fraction mean_R(M)."""

    a, b = 0.1, 0.8

    def forward(self, x):
        p0 = self.a + self.b * x[:, 0, :, :8].mean(dim=(1, 2))
        return torch.stack([p0.log(), (1 - p0).log()], dim=1)


def test_rise_expectation_on_a_model_linear_in_a_region_kept_fraction():
    # 32 x 32, s = 4: cell 8, the grid upsampled to 40 px (10 px per grid cell). Columns >= 25 are
    # interpolated from grid columns 2-3 only and the region (columns 0-7) from columns 0-1, at
    # every shift: given the shift they are independent, and E[M(u) | shift] = p. So far from the
    # region E[S(u)] = E[f] E[M(u)] / p = a + b p; in the region, S's mean is
    # (1 / (N p)) sum_i f_i m_i (m_i = mean_R(M_i)), expected a + b (p + Var(m) / p) > a + b p.
    model = Classifier.from_module(_RegionFraction(), (0.5,), (0.5,), (1, 32, 32))
    image = torch.ones(1, 1, 32, 32)
    probability = 0.5
    rise = explainers.create_explainer(
        "rise", num_masks=4000, grid=4, keep_probability=probability, batch_size=500
    )
    saliency = rise.explain(model, image, torch.tensor([0]))[0]
    a, b = _RegionFraction.a, _RegionFraction.b
    masks = smooth_masks(
        *draw_masks(generators(image, rise.seed)[0], 4000, 4, probability, (32, 32)), (32, 32)
    )
    kept = masks[:, :, :8].mean(dim=(1, 2)).double()  # m_i
    confidence = a + b * kept  # f_i
    # far columns: S's mean there averages Z_i = f_i mean_far(M_i) / p over the masks, whose
    # expectation is a + b p; allow four standard errors of that mean
    far_terms = confidence * masks[:, :, 25:].mean(dim=(1, 2)).double() / probability
    standard_error = far_terms.std() / math.sqrt(len(far_terms))
    far = saliency[:, 25:].mean().double()
    torch.testing.assert_close(far, far_terms.mean(), rtol=1e-5, atol=0)
    assert abs(far - (a + b * probability)) < 4 * standard_error, (far, standard_error)
    # the region: exactly sum_i f_i m_i / (N p), above the far value by about b Var(m) / p
    region = saliency[:, :8].mean().double()
    torch.testing.assert_close(
        region, (confidence * kept).sum() / (4000 * probability), rtol=1e-5, atol=0
    )
    assert region - far > b * kept.var() / probability - 4 * standard_error > 0


def test_rise_keeping_every_cell_gives_the_probability_everywhere():
    # p = 1: every mask is all ones, so S(u) = f_c(x) at every pixel.
    model = small_cnn()
    images = torch.randn(2, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([1, 3])
    maps = explainers.create_explainer("rise", num_masks=5, keep_probability=1.0).explain(
        model, images, targets
    )
    expected = model.probabilities(images).gather(1, targets[:, None])
    torch.testing.assert_close(maps, expected[:, :, None].expand_as(maps), rtol=1e-6, atol=1e-7)


def test_rise_is_seeded_per_image_batch_independent_and_leaves_the_global_rng_alone():
    model = small_cnn()
    images = torch.randn(3, 3, 20, 20, generator=torch.Generator().manual_seed(2))
    targets = torch.tensor([0, 1, 4])
    state = torch.get_rng_state()
    maps = explainers.create_explainer("rise", num_masks=40, batch_size=7).explain(
        model, images, targets
    )
    assert torch.equal(torch.get_rng_state(), state), "the global generator must stay untouched"
    other_batching = explainers.create_explainer("rise", num_masks=40, batch_size=40)
    torch.testing.assert_close(other_batching.explain(model, images, targets), maps)
    for i in range(3):
        alone = explainers.create_explainer("rise", num_masks=40).explain(
            model, images[i : i + 1], targets[i : i + 1]
        )
        torch.testing.assert_close(alone[0], maps[i])
    reseeded = explainers.create_explainer("rise", num_masks=40, seed=1)
    assert not torch.allclose(reseeded.explain(model, images, targets), maps)
    assert explainers.create_explainer("rise").cost() == 4000


@pytest.mark.parametrize("keep_probability", [0.0, 1.5])
def test_rise_rejects_a_keep_probability_outside_zero_one(keep_probability):
    with pytest.raises(ValueError, match="keep_probability"):
        explainers.create_explainer("rise", keep_probability=keep_probability)
