"""SHAP PartitionExplainer (Owen values), Lundberg & Lee, NeurIPS 2017, https://arxiv.org/abs/1705.07874; shap.readthedocs.io."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explainers import Explainer, register_explainer
from explainers._perturbation import scorer, to_pixels

MASKERS = ("blur", "inpaint_telea", "inpaint_ns")


@register_explainer(
    "shap_partition", tags=("perturbation", "shap", "model-agnostic"), requires=("shap", "cv2")
)
@dataclass
class ShapPartition(Explainer):
    """SHAP's partition explainer with an image masker (blur or inpaint), as in the seed study.

    ``shap.Explainer(f, shap.maskers.Image(masker, shape), algorithm="partition")`` on the image in
    the model's pixel space (x255, as cv2's inpainting works on 8-bit pixels); ``f`` sends each batch
    of masked images through the model in one forward pass on its device. The map is the target's
    Owen value per pixel summed over channels: signed, positive = the pixel raises the target's
    ``output`` (softmax probability or logit) above the fully masked image. Budget: about
    ``max_evals`` model evaluations per image (default 500, in batches of ``batch_size``); no
    gradients. Deterministic (the axis-aligned partition tree and the maskers have no randomness).
    """

    version = "1"
    fast_params = {"max_evals": 24, "batch_size": 24}

    max_evals: int = 500
    masker: str = "blur"  # "blur" (box blur), "inpaint_telea" or "inpaint_ns" (cv2 inpainting)
    blur_fraction: float = 0.5  # blur kernel side / image side (shap's ImageNet example: 128/224)
    batch_size: int = 50
    output: str = "probability"  # "probability" (softmax) or "logit"

    def cost(self) -> int:
        return self.max_evals

    def explain(self, model, images, targets):
        import shap

        if self.masker not in MASKERS:
            raise ValueError(f"shap_partition masker must be one of {MASKERS}, got {self.masker!r}")
        pixels = to_pixels(model, images) * 255.0  # [B,H,W,C]
        height, width = pixels.shape[1:3]
        if self.masker == "blur":
            kh = max(1, round(self.blur_fraction * height))
            kw = max(1, round(self.blur_fraction * width))
            mask_value = f"blur({kh},{kw})"
        else:
            mask_value = self.masker
        masker = shap.maskers.Image(mask_value, pixels.shape[1:])
        predict = scorer(model, self.output, images.device, scale=255.0)
        explainer = shap.Explainer(predict, masker, algorithm="partition")
        maps = []
        for pixel_image, target in zip(pixels, targets.tolist(), strict=True):
            # The masker caches the blurred image under id(x): a new image can reuse a freed id.
            masker.last_xid = None
            explanation = explainer(
                pixel_image[None],
                max_evals=self.max_evals,
                batch_size=self.batch_size,
                outputs=[target],
                silent=True,
            )
            maps.append(np.asarray(explanation.values[0]).reshape(height, width, -1).sum(-1))
        return torch.from_numpy(np.stack(maps).astype(np.float32)).to(images.device)
