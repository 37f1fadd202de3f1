"""Sparseness: the Gini index of the absolute map (Chalasani et al., "Concise Explanations of
Neural Networks using Adversarial Training", ICML 2020, arXiv 1810.06583; as in Quantus).

Definition. The map is resized bilinearly to the image (the base class) and its absolute values
are sorted ascending, ``a_(1) <= ... <= a_(n)`` over the ``n = H*W`` pixels. The score is the Gini
index ``G = sum_i (2i - n - 1) a_(i) / (n * sum_i a_(i))``: 0 for a constant map, ``1 - 1/n`` for a
one-hot map (all mass on one pixel); higher is sparser (better, in the paper's reading). A map
with no mass at all (all zeros) scores 0, like a constant map. ``absolute=False`` ranks the signed
map instead (a parameter; undefined for maps whose sum is not positive, which then score 0). Quantus
(``quantus.Sparseness``, abs and normalise-by-max on) computes the same index after adding 1e-7 to
the normalised map, so it differs from ours by at most about 1e-7 relative (tested). The number
depends on the resolution at which it is taken (here the image's, not the explainer's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from metrics import Metric, register_metric


@register_metric("sparseness", tags=("complexity",))
@dataclass
class Sparseness(Metric):
    """Gini index of the absolute map: 0 for a uniform map, 1 - 1/n for one pixel."""

    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[dict[str, bool]] = {"gini": True}
    needs_masks: ClassVar[bool] = False

    absolute: bool = True  # Gini of |S| (Quantus's abs=True); False: of the signed map

    def cost(self) -> int:
        return 0  # no model

    def score(self, *, model, images, targets, saliency, masks):
        values = saliency.detach().to("cpu", torch.float64).flatten(1)
        values = values.abs() if self.absolute else values
        return {"gini": gini(values)}


def gini(values: torch.Tensor) -> torch.Tensor:
    """Gini index of each row of [B, n] (0 where a row's sum is not positive)."""
    n = values.shape[1]
    ordered = torch.sort(values, dim=1).values
    ranks = torch.arange(1, n + 1, dtype=values.dtype, device=values.device)
    total = ordered.sum(1)
    index = ((2 * ranks - n - 1) * ordered).sum(1) / (n * total.clamp(min=1e-300))
    return torch.where(total > 0, index, torch.zeros_like(index))
