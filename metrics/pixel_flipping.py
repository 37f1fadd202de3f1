"""Pixel flipping (Bach, Binder, Montavon, Klauschen, Müller & Samek, "On Pixel-Wise Explanations
for Non-Linear Classifier Decisions by Layer-Wise Relevance Propagation", PLoS ONE 10(7) e0130140,
2015), with Quantus's ``PixelFlipping`` choices where the paper leaves them open.

Definition. Pixels are ranked by the map (bilinearly resized to the image, stable seeded tie-break
by :func:`metrics.rank_pixels`), most relevant first. Starting from the image, the ranked pixels
are flipped to the baseline, all channels of a pixel at once, ``floor(k * H*W / steps)`` pixels
after step ``k = 0..steps`` (default ``steps = 100``: 1% of the pixels per step; Bach et al. flip
one pixel at a time, ``steps = H*W``). The default baseline is Quantus's "black": the image's own
minimum over all channels and pixels of the normalised input. The curve ``a_k`` is the target's
softmax probability ``f_c`` after step ``k`` (``a_0`` = the unperturbed image), and the score is
the trapezoid rule over the flipped fraction 0, 1/steps, ..., 1:
``auc = (sum_k a_k - a_0/2 - a_steps/2) / steps``; lower is better (a faithful map's first pixels
carry the prediction). Variants (parameters): ``substrate`` ``mean`` (0 in normalised space),
``black`` (0 in pixel space), ``blur`` (RISE's), ``uniform`` (seeded noise); ``output="logit"``;
``auc="quantus"``: Quantus's un-normalised ``np.trapz(a_1..a_steps, dx=1)``, which leaves out the
unperturbed point and grows with the number of steps. Quantus flips one channel value per step
(its attributions are broadcast over channels, ~150k forwards per 224 px RGB image); here a step
flips whole pixels, so the two agree on one-channel images (tested on a tie-free map). Every
(image, step) row goes through the model in large batches (:func:`metrics._curves.game_curves`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from metrics import register_metric
from metrics._curves import GameMetric, trapezoid_auc

AUCS = ("fraction", "quantus")


@register_metric("pixel_flipping", tags=("faithfulness",))
@dataclass
class PixelFlipping(GameMetric):
    """Bach et al.'s pixel flipping: AUC of the target probability as top pixels go to the minimum."""

    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[dict[str, bool]] = {"auc": False}
    fast_params: ClassVar[dict[str, int]] = {"steps": 4}
    insert: ClassVar[bool] = False

    substrate: str = "minimum"  # Quantus's "black": the per-image minimum of the normalised input
    steps: int = 100
    auc: str = "fraction"  # trapezoid over the flipped fraction; "quantus": np.trapz(a_1.., dx=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.auc not in AUCS:
            raise ValueError(f"unknown auc {self.auc!r}: choose one of {', '.join(AUCS)}")

    def score(self, *, model, images, targets, saliency, masks):
        curve = self.curves(model, images, targets, saliency).double().cpu()
        if self.auc == "quantus":
            return {"auc": torch.trapezoid(curve[:, 1:], dim=1)}
        return {"auc": trapezoid_auc(curve)}
