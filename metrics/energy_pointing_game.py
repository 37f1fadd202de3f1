"""Energy-based pointing game (Wang et al., "Score-CAM", CVPR Workshops 2020, arXiv 1910.01279).

Definition. The map is resized bilinearly to the mask and its negative values are
clipped to 0; the score is the share of the remaining mass inside the mask,
``energy = 100 * sum(S+ * M) / sum(S+)`` (%). A map with no positive mass localises nothing and
scores 0. Images with an empty mask get NaN (skipped and counted). Trap: the official Score-CAM
code indexes the bounding box's rows by x; here masks and maps are both [H,W] (row, column).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from metrics import Metric, register_metric


@register_metric("energy_pointing_game", tags=("localisation",))
@dataclass
class EnergyPointingGame(Metric):
    """Share (%) of the map's positive mass that falls inside the object mask."""

    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[dict[str, bool]] = {"energy": True}
    needs_masks: ClassVar[bool] = True

    def cost(self) -> int:
        return 0

    def score(self, *, model, images, targets, saliency, masks):
        positive = saliency.double().clamp(min=0).flatten(1)
        total = positive.sum(1)
        inside = (positive * masks.flatten(1)).sum(1)
        energy = 100.0 * inside / total.clamp(min=1e-300)
        return {"energy": energy}
