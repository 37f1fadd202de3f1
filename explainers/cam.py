"""Class Activation Mapping (Zhou et al., CVPR 2016, https://arxiv.org/abs/1512.04150)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from explainers import Explainer, FeatureLayerError, register_explainer, upsample


@register_explainer("cam", tags=("cam", "feature-map"))
@dataclass
class CAM(Explainer):
    """Class Activation Mapping: the target class's linear weights over the last feature maps.

    Defined only for a global-average-pooling + linear head; refuses any other head (VGG's
    pre-logits MLP, ConvNeXt's norm head, ViTs) with a FeatureLayerError. The map is signed and
    excludes the bias, as in the paper. One forward pass per batch.
    """

    version = "1"

    def cost(self) -> int:
        return 1

    @torch.no_grad()
    def supports(self, model) -> str | None:
        if model.input_size is None:
            return None  # no input to probe the head with: ``explain`` checks each batch
        probe = torch.randn(2, *model.input_size, generator=torch.Generator().manual_seed(0))
        try:
            self._features(model, probe.to(model.device))
        except FeatureLayerError as e:
            return str(e)
        return None

    @torch.no_grad()
    def explain(self, model, images, targets):
        features, head = self._features(model, images)
        weights = head.weight[targets]  # [B,K]: w_k^c
        cam = torch.einsum("bk,bkhw->bhw", weights.to(features.dtype), features)  # sum_k w_k^c f_k
        return upsample(cam.float(), images.shape[-2:])

    @staticmethod
    def _features(model, images):
        """(feature maps, linear head), after checking logits = W . GAP(features) + b on ``images``:
        CAM's identity holds only for such a head."""
        logits, features = model.forward_with_features(images)
        head = model.linear_head()
        pooled = features.mean(dim=(2, 3))
        if head.in_features != features.shape[1] or not torch.allclose(
            head(pooled), logits, rtol=1e-3, atol=1e-4 * float(logits.abs().max()) + 1e-6
        ):
            raise FeatureLayerError(
                f"cam needs a global-average-pooling + linear head; model {model.name!r} has "
                "another head between its feature map and its classifier: use grad_cam instead"
            )
        return features, head
