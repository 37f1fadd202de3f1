"""Relevance rank accuracy (Arras, Osman & Samek, "CLEVR-XAI: A benchmark dataset for the ground
truth evaluation of neural network explanations", Information Fusion 2022, arXiv 2003.07258).

Definition. The map is resized bilinearly to the mask (the base class). With ``K`` the number of
mask pixels, the ``K`` pixels with the highest relevance are taken (signed values, ranked by
:func:`metrics.rank_pixels`: stable, seeded tie-break, exactly ``K`` pixels) and the score is the
share of them inside the mask, ``rank = |top_K(S) ∩ M| / K``, in [0, 1]; higher is better. Images
with an empty mask get NaN (skipped and counted). Positive-only vs signed relevance does not arise
here except through ties: clipping negatives to 0 would only turn them into ties, so the map is
ranked signed. This is the oracle-k binarisation of ``miou`` scored as precision instead of IoU.
Quantus (``quantus.RelevanceRankAccuracy``) takes the same top ``K`` by ``np.argsort(-S)``, whose
order among ties is arbitrary (numpy's quicksort); on maps without ties at the cut the two agree
(tested); on tied maps they differ by design.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from metrics import Metric, rank_pixels, register_metric


@register_metric("relevance_rank_accuracy", tags=("localisation",))
@dataclass
class RelevanceRankAccuracy(Metric):
    """Share of the K most relevant pixels that lie inside the mask (K = the mask's size)."""

    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[dict[str, bool]] = {"rank": True}
    needs_masks: ClassVar[bool] = True

    seed: int = 0  # tie-break

    def cost(self) -> int:
        return 0

    def score(self, *, model, images, targets, saliency, masks):
        order = rank_pixels(saliency, images, self.seed)  # [B, H*W], most relevant first
        flat = masks.flatten(1)
        k = flat.sum(1)  # [B]
        hits = flat.gather(1, order.to(flat.device))  # mask value of the pixel at each rank
        positions = torch.arange(flat.shape[1], device=flat.device)
        inside = (hits & (positions[None] < k[:, None])).sum(1)
        return {"rank": inside.double() / k.clamp(min=1).double()}
