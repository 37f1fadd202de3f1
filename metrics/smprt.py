"""Smooth MPRT (Hedström, Weber, Lapuschkin & Höhne, "Sanity Checks Revisited: An Exploration to
Repair the Model Parameter Randomisation Test", 2023, arXiv 2401.06465): MPRT on maps denoised by
averaging over noisy inputs, randomising bottom-up.

Definition. The layers, their re-initialisation and the similarities are MPRT's (see ``mprt``):
parameterised modules in forward order, normalisation layers with the layer they follow (affine
reset to 1 and 0, running statistics kept), each layer's own ``reset_parameters`` under a forked
torch RNG seeded by ``seed`` and its name, on a deep copy. The cascade runs bottom-up (the paper's
repair): step 1 randomises the first layer, step 2 the first two, ..., the final step every layer.
Every map compared, under the original model and after each step, is the mean of the explainer's
maps of ``samples`` inputs: the image itself and ``samples - 1`` noisy copies ``x + e``, ``e ~
N(0, (noise * (max x - min x))^2)`` i.i.d. per value, ``max``/``min`` over the normalised image's
values (Quantus's rule); the noise is drawn per image from ``seed`` and the image's bytes and is
the same for every model, so only the model changes between the compared maps. ``spearman@<layer>``
and ``ssim@<layer>`` compare the smoothed original map with the smoothed map once ``<layer>`` (and
every layer below it) is randomised; the headline ``spearman`` (and ``ssim``) is the fully
randomised model's. Lower is better; the sanity verdict (:meth:`passes`): mean ``spearman`` below
0.5. Quantus's ``SmoothMPRT`` (50 samples, noise 0.1, bottom-up) redraws its noise from numpy's
global RNG per call and resets normalisation layers' running statistics too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from benchmark.maps import generators
from metrics import register_metric
from metrics._randomisation import Cascade, layer_count


@register_metric("smprt", tags=("randomisation", "sanity"))
@dataclass
class SmoothMPRT(Cascade):
    """MPRT bottom-up on maps averaged over noisy copies of the input (noise-robust)."""

    version: ClassVar[str] = "1"
    order: ClassVar[str] = "bottom_up"
    fast_params: ClassVar[dict[str, int]] = {"samples": 3}

    samples: int = 50
    noise: float = 0.1  # noise std as a fraction of the image's value range

    def __post_init__(self) -> None:
        if self.samples < 1 or self.noise < 0:
            raise ValueError("smprt needs samples >= 1 and noise >= 0")

    def cost(self, explainer=None, model=None) -> int:
        """``samples`` explanations under the original model and after each cascade step."""
        per_map = explainer.cost() if explainer is not None else 1
        return per_map * self.samples * ((layer_count(model) if model is not None else 1) + 1)

    def inputs(self, images: Tensor) -> list[Tensor]:
        """The ``samples`` inputs whose maps are averaged, the image itself first."""
        spread = (images.flatten(1).amax(1) - images.flatten(1).amin(1)).cpu()
        draws = torch.stack(
            [
                torch.randn(self.samples - 1, *images.shape[1:], generator=g) * (self.noise * s)
                for g, s in zip(generators(images, self.seed), spread, strict=True)
            ]
        ).to(images.device, images.dtype)  # [B, samples - 1, C, H, W]
        return [images] + [images + draws[:, k] for k in range(self.samples - 1)]
