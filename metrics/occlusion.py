"""Occlusion confidence change: % increase in confidence and Average Drop (Chattopadhyay et al.,
"Grad-CAM++", WACV 2018, arXiv 1710.11063), on the subject / background split of the seed study.

Definition. The subject is the top ``q`` of pixels of the map (bilinearly resized
to the image; exactly ``floor(q*H*W)`` pixels, stable seeded tie-break), the rest is background. Two
occlusions fill removed pixels with ``fill``: ``mean`` (0 in normalised space = the dataset mean
colour, the default), ``black`` (0 in pixel space) or ``blur`` (the image under a Gaussian blur of
``blur_sigma`` pixels):

* **b**: the background is removed, the subject kept;
* **s**: the subject is removed, the background kept.

With ``Y = f_c(x)`` and ``O = f_c(occluded x)`` (softmax probability of the explained class), the
per-image scores, whose image means are the seed table's numbers, are:

* ``increase_b`` / ``increase_s`` = ``100 * 1[Y < O]`` (% increase in confidence);
* ``drop_b`` / ``drop_s`` = ``100 * max(0, Y - O) / Y`` (Average Drop).

Directions: for b, increase is better high and drop better low; for s, the reverse. Trap:
pytorch-grad-cam's ``DropInConfidence`` is ``max(0, Y - O)`` without dividing by ``Y``, so its
numbers are not comparable (torch-cam follows the formula above).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from metrics import (
    Metric,
    rank_pixels,
    register_metric,
    setting,
    target_probabilities,
    top_count,
    top_masks,
)

FILLS = ("mean", "black", "blur")


@register_metric("occlusion", tags=("faithfulness",))
@dataclass
class Occlusion(Metric):
    """% increase in confidence and Average Drop when the background (b) or subject (s) is removed."""

    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[dict[str, bool]] = {
        "increase_b": True,
        "drop_b": False,
        "increase_s": False,
        "drop_s": True,
    }
    headline: ClassVar[tuple[str, ...]] = ("drop_s",)
    needs_masks: ClassVar[bool] = False

    q: float = 0.25  # fraction of pixels forming the subject
    fill: str = "mean"
    blur_sigma: float = 10.0  # pixels, for fill="blur"
    seed: int = 0  # tie-break
    batch_size: int = setting(64)

    def __post_init__(self) -> None:
        if self.fill not in FILLS:
            raise ValueError(f"unknown fill {self.fill!r}: choose one of {', '.join(FILLS)}")
        top_count(self.q, 1)  # validates q

    def cost(self) -> int:
        return 3  # the image, then occlusions b and s

    def score(self, *, model, images, targets, saliency, masks):
        batch, _, height, width = images.shape
        order = rank_pixels(saliency, images, self.seed)
        subject = top_masks(order, top_count(self.q, height * width), (height, width))[:, None]
        subject = subject.to(images.device)
        filler = self._filler(model, images)
        occluded = torch.cat(
            [torch.where(subject, images, filler), torch.where(subject, filler, images)]
        )  # b: background removed; s: subject removed
        y = target_probabilities(model, images, targets, self.batch_size).double().cpu()
        o = target_probabilities(model, occluded, targets.repeat(2), self.batch_size)
        o_b, o_s = o.double().cpu().view(2, batch)
        scores = {}
        for name, o in (("b", o_b), ("s", o_s)):
            scores[f"increase_{name}"] = 100.0 * (y < o).double()
            scores[f"drop_{name}"] = 100.0 * (y - o).clamp(min=0) / y  # divides by Y (Average Drop)
        return scores

    def _filler(self, model, images: Tensor) -> Tensor:
        if self.fill == "mean":
            return torch.zeros_like(images)
        if self.fill == "black":
            return model.normalize(torch.zeros_like(images))
        return gaussian_blur(images, self.blur_sigma)


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of [B,C,H,W], kernel radius ceil(3 sigma), reflect padding (clamped)."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    out = images
    for dim in (2, 3):
        pad = min(radius, out.shape[dim] - 1)
        k = kernel[radius - pad : radius + pad + 1]
        k = k / k.sum()
        shape = (channels, 1, -1, 1) if dim == 2 else (channels, 1, 1, -1)
        padding = (0, 0, pad, pad) if dim == 2 else (pad, pad, 0, 0)
        out = F.conv2d(F.pad(out, padding, mode="reflect"), k.view(shape), groups=channels)
    return out
