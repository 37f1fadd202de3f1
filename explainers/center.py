"""Centre baseline: a centred Gaussian (TorchRay's centre baseline, Zhang et al. 2016 / Fong et al. 2019)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from explainers import Explainer, register_explainer


@register_explainer("center", tags=("baseline",))
@dataclass
class Center(Explainer):
    """Isotropic Gaussian centred on the image, std = ``sigma`` x min(H, W); no model call.

    Photographers centre their subjects: an explainer that does not beat this on a localisation
    metric is not localising.
    """

    version = "1"
    sigma: float = 0.25

    def cost(self) -> int:
        return 0

    def explain(self, model, images, targets):
        height, width = images.shape[-2:]
        ys = torch.arange(height, dtype=torch.float32, device=images.device) - (height - 1) / 2
        xs = torch.arange(width, dtype=torch.float32, device=images.device) - (width - 1) / 2
        s = self.sigma * min(height, width)
        gauss = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * s**2))
        return gauss.expand(images.shape[0], height, width).clone()
