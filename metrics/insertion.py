"""Insertion game AUC (Petsiuk, Das & Saenko, "RISE: Randomized Input Sampling for Explanation of
Black-box Models", BMVC 2018, arXiv 1806.07421), as in the RISE code's ``CausalMetric('ins')``.

Definition. Pixels are ranked by the map (bilinearly resized to the image, stable seeded tie-break
by :func:`metrics.rank_pixels`). Starting from the substrate, the most salient pixels of the image
are put back, all channels at once, ``floor(k * H*W / steps)`` pixels after step ``k = 0..steps``
(default ``steps = 224``: RISE's 224 pixels per step on 224x224 images). The curve ``a_k`` is the
target's softmax probability ``f_c`` after step ``k`` (``a_0`` = all substrate, ``a_steps`` = the
image), and the score is RISE's ``auc = (sum_k a_k - a_0/2 - a_steps/2) / steps``, the trapezoid
rule over the inserted fraction 0, 1/steps, ..., 1; higher is better. The default substrate matches
the RISE code: the normalised image blurred per channel by RISE's ``gkern(11, 5)`` (scipy's
``gaussian_filter`` of an 11x11 delta with sigma 5, reflect boundary, so not a truncated Gaussian)
with zero padding of 5 pixels (zeros of the normalised tensor: the mean colour at the border).
Variants (parameters): ``substrate`` ``mean`` (0 in normalised space, torch-cam's choice) or
``black`` (0 in pixel space); ``blur_size`` / ``blur_sigma`` (LATEC: 15 / 5); ``output="logit"``;
``steps`` (torch-cam: 20; LATEC: 50 pixels per step with ``dx = 1/N``). ``c`` is the explained
class (``targets``); RISE explains the top-1 class, the default target here too. Agreement with a
transcription of the RISE code on a tie-free map is tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from metrics import register_metric
from metrics._curves import GameMetric


@register_metric("insertion", tags=("faithfulness",))
@dataclass
class Insertion(GameMetric):
    """RISE insertion AUC: target probability as the most salient pixels return onto a blur."""

    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[dict[str, bool]] = {"auc": True}
    fast_params: ClassVar[dict[str, int]] = {"steps": 4}
    insert: ClassVar[bool] = True

    substrate: str = "blur"  # RISE: gkern(11, 5) blur of the normalised tensor
