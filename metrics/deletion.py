"""Deletion game AUC (Petsiuk, Das & Saenko, "RISE: Randomized Input Sampling for Explanation of
Black-box Models", BMVC 2018, arXiv 1806.07421), as in the RISE code's ``CausalMetric('del')``.

Definition. Pixels are ranked by the map (bilinearly resized to the image, stable seeded tie-break
by :func:`metrics.rank_pixels`). Starting from the image, the most salient pixels are replaced by
the substrate, all channels at once, ``floor(k * H*W / steps)`` pixels after step ``k = 0..steps``
(default ``steps = 224``: RISE's 224 pixels per step on 224x224 images). The curve ``a_k`` is the
target's softmax probability ``f_c`` after step ``k`` (``a_0`` = the unperturbed image, ``a_steps``
= all substrate), and the score is RISE's ``auc = (sum_k a_k - a_0/2 - a_steps/2) / steps``, the
trapezoid rule over the removed fraction 0, 1/steps, ..., 1; lower is better (a faithful map's top
pixels carry the prediction). The default substrate matches the RISE code: 0 in the model's
normalised input space (the dataset mean colour). Variants (parameters): ``substrate`` ``black``
(0 in pixel space) or ``blur`` (RISE's insertion blur, below); ``output="logit"`` scores the target's
logit instead (then the AUC is not in [0, 1]); ``steps``. Peers: torch-cam uses 20 steps and the
true removed fraction on its trapezoid (equal to ours when ``steps`` divides ``H*W``); LATEC blurs
(15 px, sigma 5) 50 pixels per step with ``dx = 1/N``. ``c`` is the explained class (``targets``);
RISE explains the top-1 class, the default target here too. Agreement with a transcription of the
RISE code on a tie-free map is tested (RISE's ``np.argsort`` ranking has no tie-break).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from metrics import register_metric
from metrics._curves import GameMetric


@register_metric("deletion", tags=("faithfulness",))
@dataclass
class Deletion(GameMetric):
    """RISE deletion AUC: target probability as the most salient pixels go to the mean colour."""

    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[dict[str, bool]] = {"auc": False}
    fast_params: ClassVar[dict[str, int]] = {"steps": 4}
    insert: ClassVar[bool] = False

    substrate: str = "mean"  # RISE: zeros of the normalised tensor
