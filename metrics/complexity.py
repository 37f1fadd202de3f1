"""Complexity: the entropy of the absolute map's shares (Bhatt, Weller & Moura, "Evaluating and
Aggregating Feature-based Model Explanations", IJCAI 2020, arXiv 2005.00631; as in Quantus).

Definition. The map is resized bilinearly to the image (the base class); each of the ``n = H*W``
pixels gets the share ``p_i = |S_i| / sum_j |S_j|``, and the score is the Shannon entropy in nats,
``H = -sum_i p_i ln p_i`` (with ``0 ln 0 = 0``): 0 for a one-hot map, ``ln n`` for a constant
map; lower is better (a simpler explanation). A map with no mass (all zeros) is treated as
uniform (``ln n``: it singles nothing out). ``normalised=True`` divides by ``ln n`` so that maps
of different sizes compare on [0, 1] (a parameter, off by default). The default matches Quantus
(``quantus.Complexity``: entropy of the abs shares, not divided by ``ln n``; it adds 1e-12 inside
the log, a difference below 1e-9 here, tested). The number depends on the resolution at which it
is taken (here the image's, not the explainer's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from metrics import Metric, register_metric


@register_metric("complexity", tags=("complexity",))
@dataclass
class Complexity(Metric):
    """Entropy (nats) of the shares of |S|: 0 for one pixel, ln n for a uniform map."""

    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[dict[str, bool]] = {"entropy": False}
    needs_masks: ClassVar[bool] = False

    normalised: bool = False  # divide by ln n (Quantus does not)

    def cost(self) -> int:
        return 0  # no model

    def score(self, *, model, images, targets, saliency, masks):
        mass = saliency.detach().to("cpu", torch.float64).flatten(1).abs()
        n = mass.shape[1]
        total = mass.sum(1, keepdim=True)
        shares = torch.where(total > 0, mass / total.clamp(min=1e-300), 1.0 / n)
        entropy = -torch.special.xlogy(shares, shares).sum(1)  # xlogy(0, 0) = 0
        if self.normalised:
            entropy = entropy / math.log(n) if n > 1 else torch.zeros_like(entropy)
        return {"entropy": entropy}
