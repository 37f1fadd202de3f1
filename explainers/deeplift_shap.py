"""DeepSHAP on the project's own rescale rule (see ``explainers._deeplift``)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from explainers import register_explainer
from explainers._deeplift import RescaleRule
from explainers._modified_backprop import FromBackground


@register_explainer("deeplift_shap", tags=("gradient", "modified-backprop", "shap"))
@dataclass
class DeepLiftShap(FromBackground, RescaleRule):
    """DeepSHAP (Lundberg & Lee, NeurIPS 2017, https://arxiv.org/abs/1705.07874) on the project's own DeepLift.

    The mean over baselines of DeepLift's rescale-rule contributions, the baselines a seeded
    sample of ``background_size`` images given to ``prepare`` (else the zero baseline, i.e.
    deeplift); summed over channels (signed; they add up to logit(x) - the mean baseline logit,
    exactly). The baselines go through the network once per call, not once per image as in
    captum_deeplift_shap: per image ``background_size`` forwards and backwards, ``rows``
    image-baseline pairs at a time. Same rules and refusals as deeplift.
    """

    version = "1"
    fast_params = {"background_size": 4}

    background_size: int = 50
    seed: int = 0

    def cost(self) -> int:
        return 3 * self.background_size

    def _references(self, images: Tensor) -> Tensor:
        return self._baselines(images, zeros=1)
