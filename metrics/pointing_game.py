"""Pointing game (Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016,
arXiv 1608.00507), as in TorchRay's ``PointingGame``.

Definition. The map is resized bilinearly to the mask; its maximum (the first in
row-major order on ties) is a hit if some mask pixel lies at Euclidean distance **strictly less**
than ``tolerance`` (15 px) from it, as TorchRay's code (``d^2 < tolerance^2``): exactly 15 px is a
miss. Per image ``hit`` is 100 or 0, so the runner's mean is the image-mean accuracy in % (TorchRay's
tables report the class mean). Images with an empty mask get NaN: skipped and counted, never hits
(Quantus counts them as hits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from metrics import Metric, register_metric


@register_metric("pointing_game", tags=("localisation",))
@dataclass
class PointingGame(Metric):
    """Hit (100) if the map's maximum lies within ``tolerance`` px (strict) of the object mask."""

    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[dict[str, bool]] = {"hit": True}
    needs_masks: ClassVar[bool] = True

    tolerance: float = 15.0  # pixels; a hit needs distance < tolerance

    def cost(self) -> int:
        return 0

    def score(self, *, model, images, targets, saliency, masks):
        height, width = masks.shape[-2:]
        points = saliency.flatten(1).argmax(1)  # first maximum in row-major order
        rows = torch.arange(height, device=masks.device).view(1, -1, 1)
        cols = torch.arange(width, device=masks.device).view(1, 1, -1)
        pr, pc = (points // width).view(-1, 1, 1), (points % width).view(-1, 1, 1)
        disc = (rows - pr) ** 2 + (cols - pc) ** 2 < self.tolerance**2
        hits = (disc & masks).flatten(1).any(1)
        return {"hit": 100.0 * hits.float()}
