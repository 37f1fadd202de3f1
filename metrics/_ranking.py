"""Pixel ranking shared by every metric: bilinear resize, stable seeded tie-break, exact counts.

Every metric that removes or selects "the top q of pixels" ranks them with :func:`rank_pixels` and
cuts exactly :func:`top_count` of them. Thresholding at ``np.percentile(S, q)`` is wrong on maps with
ties (pytorch-grad-cam's ROAD removes the whole image of a ReLU'd CAM at most percentiles); here ties
are broken by a random permutation seeded by ``seed`` and the image's bytes, so a constant map still
gives exactly ``floor(q*H*W)`` pixels and an image gets the same ranking alone or in any batch.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from benchmark.maps import image_seeds, resize_maps

__all__ = ["rank_pixels", "resize_maps", "top_count", "top_masks"]


def top_count(q: float, n: int) -> int:
    """``floor(q*n)`` pixels; the 1e-9 slack absorbs binary rounding (0.29*100 = 28.999...)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"fraction {q} is outside [0, 1]")
    return min(n, math.floor(q * n + 1e-9))


def rank_pixels(saliency: Tensor, images: Tensor, seed: int) -> Tensor:
    """Flat pixel indices [B, H*W], most salient first; ties in a seeded random order.

    ``saliency`` [B,H,W] must already be at the resolution the ranking is used at.
    """
    batch, n = saliency.shape[0], saliency[0].numel()
    flat = saliency.reshape(batch, n)
    orders = []
    for i, s in enumerate(image_seeds(images, seed)):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(s)).to(flat.device)
        # A stable descending sort of the permuted values: equal values keep the random order.
        idx = torch.sort(flat[i, perm], descending=True, stable=True).indices
        orders.append(perm[idx])
    return torch.stack(orders)


def top_masks(order: Tensor, count: int, shape: tuple[int, int], most: bool = True) -> Tensor:
    """Bool masks [B,H,W] of the ``count`` most (or least) salient pixels of each ranking."""
    batch, n = order.shape
    chosen = order[:, :count] if most else order[:, n - count :]
    mask = torch.zeros(batch, n, dtype=torch.bool, device=order.device)
    mask.scatter_(1, chosen, True)
    return mask.view(batch, *shape)
