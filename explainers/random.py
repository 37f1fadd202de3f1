"""Random baseline: i.i.d. uniform saliency (the floor every explainer must beat)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from explainers import Explainer, generators, register_explainer


@register_explainer("random", tags=("baseline",))
@dataclass
class Random(Explainer):
    """I.i.d. uniform [0,1) map, seeded per image by ``seed`` and the image's content; no model call."""

    version = "1"
    seed: int = 0

    def cost(self) -> int:
        return 0

    def explain(self, model, images, targets):
        height, width = images.shape[-2:]
        maps = [torch.rand(height, width, generator=g) for g in generators(images, self.seed)]
        return torch.stack(maps).to(images.device)
