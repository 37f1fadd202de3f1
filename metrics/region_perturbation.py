"""Region perturbation, AOPC (Samek, Binder, Montavon, Lapuschkin & Müller, "Evaluating the
Visualization of What a Deep Neural Network Has Learned", IEEE TNNLS 28(11), 2017, arXiv
1509.06321), on Quantus's ``RegionPerturbation`` grid of regions.

Definition. The image is cut into non-overlapping ``r x r`` regions (default ``region_size = 8``,
Quantus's patch; Samek et al. use 9x9) on Quantus's grid: where ``r`` does not divide a side, the
grid is centred, shifted by ``floor((r - side mod r) / 2)`` pixels, so border regions are cut. A
region's relevance is the sum of the map (bilinearly resized to the image) over its pixels;
regions are ranked most relevant first (MoRF), ties in the seeded order of
:func:`metrics.rank_pixels` applied to the region sums. Step ``k = 1..L`` replaces, all channels
at once, the pixels of the top ``k`` regions by the substrate, giving ``x^(k)`` (``x^(0) = x``),
with ``L = min(steps, number of regions)`` (default ``steps = 100``, Quantus's
``regions_evaluation``). The default substrate is Samek et al.'s noise: i.i.d. uniform values in
[0, 1) pixel space, every channel, then normalised, drawn once per image from a generator seeded by
``seed`` and the image's bytes (so the same noise at every step and in any batch). With ``f_c`` the
target's softmax probability, the score is the area over the MoRF perturbation curve,
``aopc = 1/(L+1) * sum_{k=0..L} (f_c(x^(0)) - f_c(x^(k)))``; higher is better (a faithful map's
first regions carry the prediction). Variants (parameters): ``substrate`` ``mean`` (0 in
normalised space), ``black`` (0 in pixel space), ``minimum`` (the image's minimum over channels and
pixels of the normalised input: Quantus's default "black"), ``blur`` (RISE's 11 px, sigma 5);
``output="logit"``; ``region_size``; ``steps``. Quantus returns the curve ``f_c(x) - f_c(x^(k))``
for ``k = 1..L`` without averaging (its mean is ``(L+1)/L`` times ours) and draws its uniform noise
from numpy's global generator at every step. All (image, step) rows go through the model in large
batches (:func:`metrics._curves.game_curves`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from metrics import Metric, rank_pixels, register_metric, setting
from metrics._curves import check_choices, game_curves, substrate


def region_labels(height: int, width: int, size: int) -> Tensor:
    """Region index [H, W] of every pixel on Quantus's centred grid of ``size`` x ``size`` tiles."""

    def cells(side: int) -> tuple[Tensor, int]:
        shift = (-side % size) // 2  # Quantus pads floor(half) before, ceil(half) after
        index = (torch.arange(side) + shift) // size
        return index, int(index[-1]) + 1

    rows, _ = cells(height)
    cols, per_row = cells(width)
    return rows[:, None] * per_row + cols[None, :]


@register_metric("region_perturbation", tags=("faithfulness",))
@dataclass
class RegionPerturbation(Metric):
    """Samek et al.'s AOPC: mean drop of the target probability as top r x r regions turn to noise."""

    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[dict[str, bool]] = {"aopc": True}
    needs_masks: ClassVar[bool] = False
    fast_params: ClassVar[dict[str, int]] = {"region_size": 4, "steps": 6}

    region_size: int = 8  # Quantus's patch_size; Samek et al.: 9
    steps: int = 100  # regions perturbed at most (Quantus's regions_evaluation)
    substrate: str = "uniform"
    output: str = "probability"  # softmax probability of the target, or its logit
    seed: int = 0  # the noise and the tie-break of the region ranking
    batch_size: int = setting(64)

    def __post_init__(self) -> None:
        check_choices(self.substrate, self.output)
        if self.region_size < 1 or self.steps < 1:
            raise ValueError(
                f"region_size and steps must be at least 1, got {self.region_size}, {self.steps}"
            )

    def cost(self) -> int:
        return self.steps + 1  # at most: fewer where the image has fewer regions

    def curves(self, model, images: Tensor, targets: Tensor, saliency: Tensor) -> Tensor:
        """[B, L + 1] target scores: the image, then the top 1..L regions perturbed."""
        batch, height, width = saliency.shape
        device = saliency.device
        labels = region_labels(height, width, self.region_size).to(device).flatten()
        count = int(labels.max()) + 1
        sums = torch.zeros(batch, count, dtype=torch.float64, device=device)
        sums.index_add_(1, labels, saliency.double().flatten(1))
        region_order = rank_pixels(sums.view(batch, 1, count), images, self.seed)
        region_rank = torch.empty_like(region_order)
        region_rank.scatter_(
            1, region_order, torch.arange(count, device=device).expand(batch, count)
        )
        pixel_rank = region_rank.gather(1, labels.expand(batch, -1))  # rank of each pixel's region
        order = torch.sort(pixel_rank, dim=1, stable=True).indices  # pixels, region by region
        sizes = torch.bincount(labels, minlength=count).expand(batch, count).gather(1, region_order)
        regions = min(self.steps, count)
        counts = torch.cat(
            [torch.zeros(batch, 1, dtype=sizes.dtype, device=device), sizes.cumsum(1)], 1
        )
        base = substrate(model, images, self.substrate, 11, 5.0, self.seed)
        return game_curves(
            model,
            images,
            base,
            order,
            targets,
            counts[:, : regions + 1],
            batch_size=self.batch_size,
            output=self.output,
        )

    def score(self, *, model, images, targets, saliency, masks):
        curve = self.curves(model, images, targets, saliency).double().cpu()
        return {
            "aopc": (curve[:, :1] - curve).mean(1)
        }  # AOPC of one image (the paper averages it over images)
