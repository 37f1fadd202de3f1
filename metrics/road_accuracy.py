"""ROAD accuracy curves, the original paper's protocol (Rong, Leemann et al., "A Consistent and
Efficient Evaluation Strategy for Attribution Methods", ICML 2022, arXiv 2202.00449).

Definition. Pixels are ranked by the map (bilinearly resized to the image, stable
seeded tie-break). For each fraction ``f`` in ``fractions`` (default 0.1, ..., 0.9) and each order,
``floor(f*H*W)`` pixels are **removed** (MoRF: the most salient, LeRF: the least salient) and filled
by ROAD's noisy linear imputation **in [0,1] pixel space** (the image is denormalised with the model's
mean/std, imputed, and normalised again), then the image is classified. ``targets`` are the labels
scored against: the metric declares ``needs_labels``, so the runner passes the ground-truth labels
(the paper's accuracy) and skips it on datasets without labels; called by hand with predicted classes
it measures agreement with the original prediction.

Scores per image (the runner's image mean is the accuracy, in %):

* ``morf@f`` / ``lerf@f``: 100 if the imputed image at fraction ``f`` is classified as the target,
  else 0 (the accuracy curve, one column per fraction);
* ``morf`` / ``lerf``: the mean of the curve over fractions (the area under the curve, in %).
  MoRF: lower is better; LeRF: higher is better.

Trap: in the original code's LeRF mode the percentage is the fraction **kept**, so its LeRF curve at
``p`` is our ``lerf@(1-p)``; here ``f`` is the fraction removed in both orders. The means over the
symmetric default fractions are the same. (Its demo notebook also averages the probability of class
0, not the true class; this metric scores the target.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from metrics import register_metric
from metrics._road import FRACTIONS, ORDERS, RoadMetric


def score_names(fractions: tuple[float, ...]) -> dict[str, bool]:
    """Every score name with its direction (MoRF: lower is better, LeRF: higher is better)."""
    names = {"morf": False, "lerf": True}
    for order in ORDERS:
        names.update({f"{order}@{f:g}": order == "lerf" for f in fractions})
    return names


@register_metric("road_accuracy", tags=("faithfulness",))
@dataclass
class RoadAccuracy(RoadMetric):
    """ROAD accuracy curves (MoRF, LeRF) against the targets, imputation in [0,1] pixel space."""

    version: ClassVar[str] = "1"
    # For the default fractions; an instance lists the names of its own fractions.
    higher_is_better: ClassVar[dict[str, bool]] = score_names(FRACTIONS)
    headline: ClassVar[tuple[str, ...]] = ("morf", "lerf")
    needs_labels: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.higher_is_better = score_names(self.fractions)  # type: ignore[misc]

    def cost(self) -> int:
        return 2 * len(self.fractions)  # each order x fraction

    def score(self, *, model, images, targets, saliency, masks):
        _, correct = self.outputs(model, images, targets, saliency, pixel_space=True)
        hits = 100.0 * correct.float()  # [B, 2, F]
        scores = {}
        for o, order in enumerate(ORDERS):
            scores[order] = hits[:, o].mean(dim=1)
            for k, f in enumerate(self.fractions):
                scores[f"{order}@{f:g}"] = hits[:, o, k]
        return scores
