"""mIoU of the binarised saliency map against the hand mask (as in the localisation tables of
Grad-CAM, Selvaraju et al. 2017, and Score-CAM, Wang et al. 2020), three binarisations.

Definition. The map is resized bilinearly to the mask and binarised three ways:

* ``topK`` for K in 5, 10, 20, 30, 50: the ``floor(K/100*H*W)`` most salient pixels (stable seeded
  tie-break, so a map with ties still selects exactly that many); ``top_mean`` their mean;
* ``oracle``: the ``|M|`` most salient pixels, ``|M|`` the mask's own pixel count;
* ``otsu``: the map min-max scaled to 0..255 and truncated to uint8 (``np.uint8(S*255)`` as
  pytorch-grad-cam), thresholded by Otsu's method (OpenCV's: ``t`` maximises the between-class
  variance, first maximum, foreground ``> t``); a constant map gives an empty foreground.

Per image: IoU = |B & M| / |B | M| in %. "mIoU" is the mean over images (the runner's), not over
classes. Images with an empty mask get NaN (skipped and counted by the runner), never a score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from metrics import Metric, rank_pixels, register_metric, top_count, top_masks

PERCENTS = (5, 10, 20, 30, 50)


def iou(binary: Tensor, masks: Tensor) -> Tensor:
    """Per-image IoU in % of bool [B,H,W] tensors (0 where the union is empty)."""
    inter = (binary & masks).flatten(1).sum(1).double()
    union = (binary | masks).flatten(1).sum(1).double()
    return 100.0 * inter / union.clamp(min=1)


def otsu_threshold(values: np.ndarray) -> int:
    """Otsu's threshold of uint8 values, as OpenCV's THRESH_OTSU (foreground is ``> t``)."""
    hist = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    p = hist / hist.sum()
    omega = np.cumsum(p)  # weight of the class <= t
    mu = np.cumsum(p * np.arange(256))
    mu_total = mu[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = (mu_total * omega - mu) ** 2 / (omega * (1 - omega))
    sigma[~np.isfinite(sigma)] = 0.0
    # OpenCV compares with a strict '>' over t = 0..255 and keeps the first maximum; the 1e-12
    # relative slack stops rounding noise from picking a later, equal maximum.
    best = sigma.max()
    return int(np.flatnonzero(sigma >= best * (1 - 1e-12))[0]) if best > 0 else 0


def otsu_masks(maps: Tensor) -> Tensor:
    """Otsu binarisation of each map [B,H,W] scaled to 0..255 (a constant map: empty)."""
    out = []
    for s in maps.double().numpy():
        span = s.max() - s.min()
        if span > 0:
            scaled = np.uint8((s - s.min()) / span * 255)
            out.append(torch.from_numpy(scaled > otsu_threshold(scaled)))
        else:
            out.append(torch.zeros(s.shape, dtype=torch.bool))
    return torch.stack(out)


@register_metric("miou", tags=("localisation",))
@dataclass
class MIoU(Metric):
    """IoU (%) of the top-k%, oracle-k and Otsu binarisations of the map with the object mask."""

    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[dict[str, bool]] = {
        **{f"top{k}": True for k in PERCENTS},
        "top_mean": True,
        "oracle": True,
        "otsu": True,
    }
    headline: ClassVar[tuple[str, ...]] = ("oracle",)
    needs_masks: ClassVar[bool] = True

    seed: int = 0  # tie-break

    def cost(self) -> int:
        return 0

    def score(self, *, model, images, targets, saliency, masks):
        shape = tuple(masks.shape[-2:])
        n = shape[0] * shape[1]
        order = rank_pixels(saliency, images, self.seed)
        scores: dict[str, Tensor] = {}
        for k in PERCENTS:
            scores[f"top{k}"] = iou(top_masks(order, top_count(k / 100, n), shape), masks)
        scores["top_mean"] = torch.stack([scores[f"top{k}"] for k in PERCENTS]).mean(0)
        sizes = masks.flatten(1).sum(1).tolist()
        oracle = torch.stack(
            [top_masks(order[i : i + 1], int(m), shape)[0] for i, m in enumerate(sizes)]
        )
        scores["oracle"] = iou(oracle, masks)
        scores["otsu"] = iou(otsu_masks(saliency), masks)
        return scores
