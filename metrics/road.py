"""ROAD, pytorch-grad-cam convention (Rong, Leemann et al., "A Consistent and Efficient Evaluation
Strategy for Attribution Methods", ICML 2022, arXiv 2202.00449; as in pytorch-grad-cam's
``ROADCombined``, the seed study's ROAD table).

Definition (docs/METRICS.md). Pixels are ranked by the map (bilinearly resized to the image, stable
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

from benchmark.registry import setting
from metrics import Metric, register_metric
from metrics._checks import check_inputs
from metrics._road import road_outputs, target_probabilities

FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@register_metric("road", tags=("faithfulness",))
@dataclass
class Road(Metric):
    """ROAD MoRF / LeRF / combined: 100 x change in target probability after noisy linear imputation."""

    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[dict[str, bool]] = {"morf": False, "lerf": True, "combined": True}
    headline: ClassVar[tuple[str, ...]] = ("combined",)
    needs_masks: ClassVar[bool] = False

    fractions: tuple[float, ...] = FRACTIONS
    noise: float = 0.01
    seed: int = 0
    batch_size: int = setting(64)  # model forwards per chunk (bounds memory)
    # imputation threads; None: one per core for images from 64x64, else none
    workers: int | None = setting(None)

    def __post_init__(self) -> None:
        self.fractions = tuple(float(f) for f in self.fractions)
        self.timings: dict[str, float] = {}  # seconds spent imputing and in model forwards

    def __call__(self, *, model, images, targets, saliency, masks=None):
        check_inputs(images, saliency, masks, needs_masks=False, metric=self.name)
        original = target_probabilities(model, images, targets, self.batch_size).cpu()
        probs, _ = road_outputs(
            model, images, targets, saliency, fractions=self.fractions, pixel_space=False,
            noise=self.noise, seed=self.seed, batch_size=self.batch_size, workers=self.workers,
            timings=self.timings,
        )  # fmt: skip
        change = 100.0 * (probs.double() - original.double()[:, None, None])  # [B, 2, F]
        morf, lerf = change.mean(dim=2).unbind(1)
        return {
            "morf": morf.float(),
            "lerf": lerf.float(),
            "combined": ((lerf - morf) / 2).float(),
        }


__all__ = ["FRACTIONS", "Road"]
