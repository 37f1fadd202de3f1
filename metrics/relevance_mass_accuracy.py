"""Relevance mass accuracy (Arras, Osman & Samek, "CLEVR-XAI: A benchmark dataset for the ground
truth evaluation of neural network explanations", Information Fusion 2022, arXiv 2003.07258).

Definition. The map is resized bilinearly to the mask (the base class). With ``relevance``
``positive`` (the default, the paper's choice: only positive relevance counts), the map's negative
values are clipped to 0 and the score is ``mass = sum(S+ * M) / sum(S+)``, in [0, 1]; higher is
better. A map with no positive mass localises nothing and scores 0. Images with an empty mask get
NaN (skipped and counted). Variants (a parameter): ``signed`` uses the raw map, as Quantus does
(``quantus.RelevanceMassAccuracy``, abs off; its max-normalisation cancels in the ratio), so the
score can leave [0, 1] when the map has negative values, and a map summing to 0 scores 0 here (NaN
or inf in Quantus); ``abs`` uses ``|S|``. With the default, the score is ``energy_pointing_game``
divided by 100. Agreement with Quantus on maps with negative values (``signed``) and on
non-negative maps (any choice) is tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from metrics import Metric, register_metric

RELEVANCE = ("positive", "signed", "abs")


@register_metric("relevance_mass_accuracy", tags=("localisation",))
@dataclass
class RelevanceMassAccuracy(Metric):
    """Share of the map's positive relevance inside the object mask, in [0, 1]."""

    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[dict[str, bool]] = {"mass": True}
    needs_masks: ClassVar[bool] = True

    relevance: str = "positive"  # positive (Arras et al.), signed (Quantus) or abs

    def __post_init__(self) -> None:
        if self.relevance not in RELEVANCE:
            raise ValueError(
                f"unknown relevance {self.relevance!r}: choose one of {', '.join(RELEVANCE)}"
            )

    def cost(self) -> int:
        return 0

    def score(self, *, model, images, targets, saliency, masks):
        values = saliency.double().flatten(1)
        if self.relevance == "positive":
            values = values.clamp(min=0)
        elif self.relevance == "abs":
            values = values.abs()
        total = values.sum(1)
        inside = (values * masks.flatten(1)).sum(1)
        safe = torch.where(total == 0, torch.ones_like(total), total)
        return {"mass": torch.where(total == 0, torch.zeros_like(total), inside / safe)}
