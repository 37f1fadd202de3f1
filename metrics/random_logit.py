"""Random logit test (Sixt, Granz & Landgraf, "When Explanations Lie: Why Many Modified BP
Attributions Fail", ICML 2020, arXiv 1912.09818): does the map change when another class is
explained?

Definition. For each image with explained class ``c``, another class ``c'`` is drawn uniformly from
the model's other ``K - 1`` classes (``K`` = the width of the model's logits) by a generator seeded
by ``seed`` and the image's bytes (so the draw is the same alone or in any batch). The explainer
re-explains the image for ``c'`` under the unchanged model, and its map ``S'`` is compared with the
map ``S`` being scored (bilinearly resized to the image): ``spearman`` is their Spearman rank
correlation over the pixels (raw signed values, average ranks for ties; two constant maps score 1,
one constant map 0) and ``ssim`` their SSIM (skimage, 7x7 uniform window, each map min-max scaled
to [0, 1], a constant map to zeros). Lower is better: a class-sensitive explanation differs
between classes. The sanity verdict (:meth:`passes`): mean ``spearman`` below 0.5. Quantus's
``RandomLogit`` uses SSIM alone and reseeds numpy's global RNG for every batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from benchmark.maps import generators
from metrics import Metric, register_metric
from metrics._randomisation import explain, spearman, ssim


@register_metric("random_logit", tags=("randomisation", "sanity"))
@dataclass
class RandomLogit(Metric):
    """Rank correlation of the map of the explained class with the map of a random other class."""

    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[dict[str, bool]] = {"spearman": False, "ssim": False}
    needs_explainer: ClassVar[bool] = True

    seed: int = 0  # the draw of the other class

    @classmethod
    def passes(cls, mean: float) -> bool:
        """Passes when the other class's map keeps less than half of the rank order
        (mean Spearman < 0.5)."""
        return mean < 0.5

    def cost(self, explainer=None, model=None) -> int:
        """One re-explanation (the forward that counts the classes is one per batch)."""
        return explainer.cost() if explainer is not None else 1

    def other_classes(self, images: Tensor, targets: Tensor, classes: int) -> Tensor:
        """The class ``c'`` drawn for each image: uniform over the classes other than its target."""
        if classes < 2:
            raise ValueError("random_logit needs a model with at least two classes")
        draws = torch.stack(
            [torch.randint(classes - 1, (), generator=g) for g in generators(images, self.seed)]
        ).to(targets.device)
        return draws + (draws >= targets).long()  # skip the target itself

    def score(self, *, model, images, targets, saliency, masks, explainer):
        with torch.no_grad():
            classes = model(images[:1]).shape[1]
        others = self.other_classes(images, targets, classes)
        other_maps = explain(explainer, model, images, others)
        return {"spearman": spearman(saliency, other_maps), "ssim": ssim(saliency, other_maps)}
