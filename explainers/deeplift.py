"""DeepLIFT, the project's own rescale rule (see ``explainers._deeplift``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from explainers import register_explainer
from explainers._deeplift import RescaleRule


@register_explainer("deeplift", tags=("gradient", "modified-backprop"))
@dataclass
class DeepLift(RescaleRule):
    """DeepLIFT rescale rule (Shrikumar et al., ICML 2017, https://arxiv.org/abs/1704.02685), the project's own.

    Contributions relative to the zero baseline (the data mean), summed over channels (signed;
    they add up to logit(x) - logit(baseline) exactly). Equals captum_deeplift where captum's
    rules are exact; against non-zero references (deeplift_shap) captum's maps do not add up on
    overlapping max-pools or two rule modules in a row (see ``explainers._deeplift``). Refuses models
    with a non-linearity it has no rule for (GELU, SiLU, LayerNorm, attention) or a non-linear
    module used twice. One forward of the baseline per call, one forward and one backward per
    image, ``rows`` images at a time.
    """

    version = "1"

    def cost(self) -> int:
        return 3

    def _references(self, images: Tensor) -> Tensor:
        return torch.zeros(1, *images.shape[1:], device=images.device, dtype=images.dtype)
