"""Model parameter randomisation test, cascading from the top layer down (Adebayo et al., "Sanity
Checks for Saliency Maps", NeurIPS 2018, arXiv 1810.03292).

Definition. The layers are the modules holding parameters of their own, in the order a probe
forward of one image first calls them (forward pre-hooks); a normalisation layer (BatchNorm,
InstanceNorm, GroupNorm, LayerNorm) is not a step of its own but goes with the parameterised
layer called before it. On a deep copy of the model (the shared model is never changed), the
layers are re-initialised cumulatively from the output layer down: step 1 randomises the last
layer, step 2 the last two, ..., the final step every layer. A layer is re-initialised by its own
``reset_parameters`` (torch's init for its type) under a forked torch RNG seeded by ``seed`` and
the layer's name, so the randomised weights do not depend on the order, the batch or the global
RNG state (restored afterwards); a layer without ``reset_parameters`` redraws each of its own
parameters from a normal with that parameter's mean and standard deviation; a normalisation
layer's affine weight and bias are reset to 1 and 0 and its running statistics kept. After each
step the explainer re-explains the images for the same targets under the copy, and the new map
``S'`` is compared with the original map ``S`` (the map being scored, bilinearly resized to the
image): ``spearman@<layer>`` is the Spearman rank correlation of ``S`` and ``S'`` over the pixels
(raw signed values, average ranks for ties; two constant maps score 1, one constant map 0) and
``ssim@<layer>`` their SSIM (skimage, 7x7 uniform window, each map min-max scaled to [0, 1], a
constant map to zeros), ``<layer>`` naming the last layer randomised. The headline ``spearman``
(and ``ssim``) is the fully randomised model's. Lower is better: a map that depends on the learned
weights changes. The sanity verdict (:meth:`passes`): mean ``spearman`` below 0.5. Quantus's MPRT
differs: it resets every module with ``reset_parameters`` (normalisation layers and their running
statistics included), in definition order, and takes abs and normalises the maps first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from metrics import register_metric
from metrics._randomisation import Cascade, layer_count


@register_metric("mprt", tags=("randomisation", "sanity"))
@dataclass
class MPRT(Cascade):
    """Rank correlation of the map with the maps under cascading top-down layer randomisation."""

    version: ClassVar[str] = "1"
    order: ClassVar[str] = "top_down"

    def cost(self, explainer=None, model=None) -> int:
        """One re-explanation per cascade step (a one-evaluation explainer and one step when
        ``explainer`` and ``model`` are not given)."""
        per_map = explainer.cost() if explainer is not None else 1
        return per_map * (layer_count(model) if model is not None else 1)
