"""Efficient MPRT (Hedström, Weber, Lapuschkin & Höhne, "Sanity Checks Revisited: An Exploration
to Repair the Model Parameter Randomisation Test", 2023, arXiv 2401.06465): the rise in a map's
complexity (entropy) once the model is fully randomised.

Definition. On a deep copy of the model every layer is re-initialised as in ``mprt`` (modules
holding parameters of their own; each by its own ``reset_parameters`` under a forked torch RNG
seeded by ``seed`` and its name; normalisation layers' affine weight and bias reset to 1 and 0,
running statistics kept); order does not matter, only the fully randomised model is used. The
explainer re-explains the images for the same targets under it. The complexity of a map is the
discrete entropy (nats) ``H = -sum_k p_k ln p_k`` of the histogram of its raw values (the map
being scored, bilinearly resized to the image, and the new map) in ``bins`` equal-width bins
spanning that map's own minimum to maximum (numpy's ``histogram``; a constant map has ``H = 0``).
The score ``entropy_rise = (H(S_random) - H(S)) / ln(bins)`` is the rise in entropy as a share of
the largest possible (``ln bins``), in [-1, 1]; higher is better: a map that explains the learned
model turns into noise when its weights are. The sanity verdict (:meth:`passes`): mean rise above
0 (a map that ignores the model scores exactly 0). Quantus's ``EfficientMPRT`` returns the
relative rise ``(H_random - H) / H`` (ours times ``ln(bins) / H``; infinite there for a constant
original map) and picks its bin count from the whole batch (so a score depends on the other
images); here ``bins`` is a parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from scipy.stats import entropy
from torch import Tensor

from metrics import Metric, register_metric
from metrics._randomisation import explain, layer_groups, randomise, randomised_copy


def histogram_entropy(maps: Tensor, bins: int) -> Tensor:
    """Per-map entropy [B] (nats) of the histogram of its values in ``bins`` equal-width bins."""
    out = []
    for values in maps.flatten(1).double().cpu().numpy():
        counts, _ = np.histogram(values, bins=bins)
        out.append(entropy(counts))
    return torch.tensor(out, dtype=torch.float64)


@register_metric("emprt", tags=("randomisation", "sanity"))
@dataclass
class EfficientMPRT(Metric):
    """Rise in the map's histogram entropy under the fully randomised model (share of ln bins)."""

    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[dict[str, bool]] = {"entropy_rise": True}
    needs_explainer: ClassVar[bool] = True

    bins: int = 100
    seed: int = 0  # the layers' re-initialisation

    def __post_init__(self) -> None:
        if self.bins < 2:
            raise ValueError("emprt needs bins >= 2")

    @classmethod
    def passes(cls, mean: float) -> bool:
        """Passes when the maps grow more complex under the randomised model (mean rise > 0)."""
        return mean > 0

    def cost(self, explainer=None, model=None) -> int:
        """One re-explanation, under the fully randomised model."""
        return explainer.cost() if explainer is not None else 1

    def score(self, *, model, images, targets, saliency, masks, explainer):
        randomised = randomised_copy(model)
        for _, members in layer_groups(randomised, images):
            randomise(randomised.net, members, self.seed)
        after = histogram_entropy(explain(explainer, randomised, images, targets), self.bins)
        before = histogram_entropy(saliency, self.bins)
        return {"entropy_rise": (after - before) / math.log(self.bins)}
