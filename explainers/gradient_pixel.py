"""Gradient x input pixel map (the seed chest X-ray study's gradient method; Shrikumar et al., 2016,
https://arxiv.org/abs/1605.01713)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from explainers import Explainer, register_explainer, target_scores


@register_explainer("gradient_pixel", tags=("gradient",))
@dataclass
class GradientPixel(Explainer):
    """Input gradient of the target logit times the input, magnitude summed over channels.

    ``signed=True`` keeps the sign and sums over channels instead: on a linear model that is the
    exact per-pixel contribution w . x. One forward and one backward pass per batch.
    """

    version = "1"
    signed: bool = False

    def cost(self) -> int:
        return 2  # one forward, one backward

    def explain(self, model, images, targets):
        with torch.enable_grad():
            x = images.detach().requires_grad_(True)
            (grads,) = torch.autograd.grad(target_scores(model(x), targets).sum(), x)
        contribution = (grads * x).detach().float()  # per channel: x_c * d y^c / d x_c
        return contribution.sum(dim=1) if self.signed else contribution.abs().sum(dim=1)
