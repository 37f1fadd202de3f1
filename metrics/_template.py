"""Deletion game, one step (Petsiuk et al., "RISE", BMVC 2018, arXiv 1806.07421): the metric template.

Definition. Pixels are ranked by the map (bilinearly resized to the image by the base class; stable
seeded tie-break by :func:`metrics.rank_pixels`); the top ``q`` (exactly ``floor(q*H*W)`` pixels)
are set to 0 in the model's normalised input space (the dataset mean colour). The score is
``drop = 100 * (f_c(x) - f_c(x'))`` with ``f_c`` the softmax probability of the explained class:
higher is better (a faithful map's top pixels carry the prediction).

Copy this file to ``metrics/<name>.py``, rename the registry name and the class, and replace the
definition and ``score``: it passes the contract tests as it stands. The module docstring opens with
the citation and holds the exact definition after the word "Definition"; the class docstring's first
line is what ``python -m benchmark ls metrics`` shows. Files starting with ``_`` are never registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from metrics import (
    Metric,
    rank_pixels,
    register_metric,
    setting,
    target_probabilities,
    top_count,
    top_masks,
)


@register_metric("my_metric", tags=("faithfulness",))
@dataclass
class MyMetric(Metric):
    """Drop (%) in target probability when the top q of pixels are set to the mean colour."""

    version: ClassVar[str] = "1"  # bump whenever the numbers would change
    higher_is_better: ClassVar[dict[str, bool]] = {"drop": True}  # every score it returns
    needs_masks: ClassVar[bool] = False

    q: float = 0.25  # a parameter: recorded with the results, part of the cache key
    seed: int = 0  # tie-break; defaults to the suite's seed in a run
    batch_size: int = setting(64)  # a run setting: never changes the numbers, not in the key

    def cost(self) -> int:
        return 2  # forward passes per image: the image and the perturbed image

    def score(self, *, model, images, targets, saliency, masks):
        height, width = images.shape[-2:]
        order = rank_pixels(saliency, images, self.seed)  # saliency is [B,H,W] here
        removed = top_masks(order, top_count(self.q, height * width), (height, width))
        perturbed = torch.where(removed[:, None].to(images.device), 0.0, images)
        before = target_probabilities(model, images, targets, self.batch_size).double()
        after = target_probabilities(model, perturbed, targets, self.batch_size).double()
        return {"drop": (100.0 * (before - after)).cpu()}
