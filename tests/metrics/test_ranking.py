from __future__ import annotations

import math

import pytest
import torch

from metrics._ranking import rank_pixels, resize_maps, top_count, top_masks


def _images(n=2, size=(10, 10)):
    return torch.randn(n, 3, *size, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("q", [0.1, 0.25, 0.29, 0.5, 0.9, 1.0, 0.0])
def test_constant_map_removes_exactly_floor_q_n(q):
    images = _images(size=(10, 13))
    order = rank_pixels(torch.ones(2, 10, 13), images, seed=0)
    mask = top_masks(order, top_count(q, 130), (10, 13))
    assert mask.flatten(1).sum(1).tolist() == [math.floor(q * 130 + 1e-9)] * 2
    assert top_count(0.29, 100) == 29  # 0.29 * 100 = 28.999... in binary


def test_relu_map_with_80_percent_zeros():
    images = _images(size=(20, 20))
    g = torch.Generator().manual_seed(0)
    maps = torch.relu(torch.randn(2, 20, 20, generator=g) - 0.8416)  # ~80% zeros
    assert (maps == 0).float().mean() > 0.7
    order = rank_pixels(maps, images, seed=0)
    for q in (0.1, 0.3, 0.5, 0.9):
        mask = top_masks(order, top_count(q, 400), (20, 20))
        assert mask.flatten(1).sum(1).tolist() == [math.floor(q * 400)] * 2
        # every positive pixel ranks above every zero
        positives = (maps > 0).flatten(1).sum(1)
        for i in range(2):
            chosen = maps[i].flatten()[order[i, : top_count(q, 400)]]
            assert (chosen > 0).sum() == min(positives[i], top_count(q, 400))


def test_least_salient_masks_and_order():
    maps = torch.arange(12.0).view(1, 3, 4)
    order = rank_pixels(maps, _images(1, (3, 4)), seed=0)
    assert order[0].tolist() == list(range(11, -1, -1))
    least = top_masks(order, 3, (3, 4), most=False)
    assert least.flatten().nonzero().flatten().tolist() == [0, 1, 2]


def test_tie_break_is_seeded_and_batch_independent():
    images = _images(3)
    maps = torch.zeros(3, 10, 10)
    a = rank_pixels(maps, images, seed=0)
    assert torch.equal(a, rank_pixels(maps, images, seed=0))
    assert not torch.equal(a, rank_pixels(maps, images, seed=1))
    assert torch.equal(a[1:2], rank_pixels(maps[1:2], images[1:2], seed=0))


def test_resize_is_bilinear_half_pixel():
    small = torch.tensor([[[0.0, 1.0]]])
    assert torch.allclose(resize_maps(small, (1, 4)), torch.tensor([[[0.0, 0.25, 0.75, 1.0]]]))
