"""Grad-CAM (Selvaraju et al., ICCV 2017, https://arxiv.org/abs/1610.02391)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from explainers import Explainer, register_explainer, target_scores, upsample


@register_explainer("grad_cam", tags=("cam", "feature-map", "gradient"))
@dataclass
class GradCAM(Explainer):
    """Grad-CAM on the model's feature layer: ReLU of the gradient-weighted feature maps.

    Agrees with pytorch-grad-cam's GradCAM up to its per-image min-max scaling, which this plugin
    does not apply (raw scores; metrics decide). One forward and one backward pass per batch.
    """

    version = "1"

    def cost(self) -> int:
        return 2  # one forward, one backward

    def explain(self, model, images, targets):
        with torch.enable_grad():
            logits, features = model.forward_with_features(images)
            (grads,) = torch.autograd.grad(target_scores(logits, targets).sum(), features)
        weights = grads.mean(dim=(2, 3), keepdim=True)  # eq. 1: alpha_k^c = GAP of dy^c/dA^k
        cam = F.relu((weights * features).sum(dim=1))  # eq. 2: ReLU(sum_k alpha_k^c A^k)
        return upsample(cam.detach().float(), images.shape[-2:])
