"""ROAD, pytorch-grad-cam convention (Rong, Leemann et al., "A Consistent and Efficient Evaluation
Strategy for Attribution Methods", ICML 2022, arXiv 2202.00449; as in pytorch-grad-cam's
``ROADCombined``, the seed study's ROAD table).

Definition. Pixels are ranked by the map (bilinearly resized to the image, stable
seeded tie-break); for each removal fraction ``f`` in ``fractions`` (default 0.1, ..., 0.9):

* MoRF removes the ``floor(f*H*W)`` most salient pixels, LeRF the ``floor(f*H*W)`` least salient;
* the removed pixels are filled by ROAD's noisy linear imputation (8-neighbour weights 1/6 and 1/12,
  channels solved jointly, ``noise * N(0,1)`` on imputed pixels only, seeded per image), **in the
  space the model consumes** (normalised inputs), as pytorch-grad-cam does;
* the score is ``100 * (f_c(imputed x) - f_c(x))`` with ``f_c`` the softmax probability of the
  explained class.

Per image: ``morf`` and ``lerf`` are the means over fractions (morf: lower is better, a faithful map's
top pixels matter; lerf: higher is better), ``combined = (lerf - morf) / 2`` (higher is better; the
seed table's combined column equals (ROAD b - ROAD s) / 2).

Differences from pytorch-grad-cam, on purpose: it thresholds at ``np.percentile`` with ``<``, which
removes the whole image of a map with ties (a ReLU'd CAM) and is off by one pixel at some sizes, and
its ``ROADMostRelevantFirst(percentile=p)`` removes the top ``100 - p`` percent (its averages over the
symmetric set 10..90 are unaffected). With noise 0 and a map without ties the two agree (tested).
The unperturbed forward runs once per image, not once per fraction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from benchmark.timing import timed
from metrics import register_metric, target_probabilities
from metrics._road import FRACTIONS, RoadMetric


@register_metric("road", tags=("faithfulness",))
@dataclass
class Road(RoadMetric):
    """ROAD MoRF / LeRF / combined: 100 x change in target probability after noisy linear imputation."""

    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[dict[str, bool]] = {"morf": False, "lerf": True, "combined": True}
    headline: ClassVar[tuple[str, ...]] = ("combined",)

    def cost(self) -> int:
        return 1 + 2 * len(self.fractions)  # the unperturbed image, then each order x fraction

    def score(self, *, model, images, targets, saliency, masks):
        probs, _ = self.outputs(model, images, targets, saliency, pixel_space=False)
        original, seconds = timed(
            target_probabilities, model, images, targets, self.batch_size, device=images.device
        )
        self.timings["forward"] = self.timings.get("forward", 0.0) + seconds
        original = original.cpu()
        change = 100.0 * (probs.double() - original.double()[:, None, None])  # [B, 2, F]
        morf, lerf = change.mean(dim=2).unbind(1)
        return {
            "morf": morf.float(),
            "lerf": lerf.float(),
            "combined": ((lerf - morf) / 2).float(),
        }


__all__ = ["FRACTIONS", "Road"]
