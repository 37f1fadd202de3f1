"""IROF, Iterative Removal Of Features (Rieger & Hansen, "IROF: a low resource evaluation metric
for explanation methods", ICLR 2020 workshop, arXiv 2003.08747; as in Quantus's ``IROF``).

Definition. Each image, in [0, 1] pixel space (``model.denormalize``, clipped), is cut into
superpixels by scikit-image's SLIC (``n_segments`` 100, ``compactness`` 10, ``start_label`` 0, labels
renumbered 0..K-1; deterministic, no seed). Quantus segments the normalised input instead (SLIC's
Lab conversion then sees values outside [0, 1] and can merge a whole image into one segment):
``segment_space="normalised"``. Segments are ranked by the mean of the map over their
pixels (the map resized bilinearly to the image by the base class), most relevant first, ties in
the seeded order of :func:`metrics.rank_pixels` applied to the segment means. Removing the top ``k``
segments (``k = 0..K``) sets all their channels to the baseline, giving ``x_k``; the curve is
``p_k = f_c(x_k) / f_c(x)`` with ``f_c`` the target's softmax probability (``p_0 = 1``). The score is
the area over the curve on the removed fraction, ``irof = 1 - (sum_k p_k - p_0/2 - p_K/2) / K``
(trapezoid rule, so divided by the segment count; 0 if nothing changes, near 1 if the first
segments take the prediction away); higher is better. Default baseline: ``mean`` = 0 in
normalised space (the dataset mean colour), fixed; variants (parameters): ``black`` (0 in pixel
space) and ``current_mean``, Quantus's "mean": the mean over all channels and pixels of the image
as perturbed so far, recomputed before each removal. ``aoc="quantus"`` scores Quantus's un-normalised
area, ``K - trapz(p_1..p_K, dx=1)`` (no ``p_0`` point, not divided by ``K``). With it,
``current_mean`` and ``segment_space="normalised"``, the score equals quantus 0.6.0's on a map
without tied segment means, one image at a time (tested). Traps in quantus 0.6.0: its "mean" is
taken over the whole batch, not the image (an image's score depends on its batch-mates); it fails
on RGB inputs (the removal mask is [B,1,H,W] and must match the input's shape), and on numpy >= 2.4
(``np.trapz`` is gone). All perturbed images of a batch go through the model in large batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from metrics import Metric, rank_pixels, register_metric, setting, target_probabilities

BASELINES = ("mean", "black", "current_mean")
AOCS = ("fraction", "quantus")


@register_metric("irof", tags=("faithfulness",))
@dataclass
class Irof(Metric):
    """Area over the curve of the target probability as SLIC superpixels go, most relevant first."""

    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[dict[str, bool]] = {"irof": True}
    needs_masks: ClassVar[bool] = False
    fast_params: ClassVar[dict[str, int]] = {"n_segments": 25}  # 14-27 segments at 12x12

    n_segments: int = 100  # SLIC's request (Quantus: skimage's default 100)
    compactness: float = 10.0
    segment_space: str = "pixel"  # SLIC on [0,1] pixels; "normalised": on the model input (Quantus)
    baseline: str = "mean"
    aoc: str = "fraction"  # area over the curve on the removed fraction; "quantus": un-normalised
    seed: int = 0  # tie-break of the segment ranking
    batch_size: int = setting(64)

    def __post_init__(self) -> None:
        if self.baseline not in BASELINES:
            raise ValueError(
                f"unknown baseline {self.baseline!r}: choose one of {', '.join(BASELINES)}"
            )
        if self.segment_space not in ("pixel", "normalised"):
            raise ValueError(f"unknown segment_space {self.segment_space!r}: pixel or normalised")
        if self.aoc not in AOCS:
            raise ValueError(f"unknown aoc {self.aoc!r}: choose one of {', '.join(AOCS)}")

    def cost(self) -> int:
        return self.n_segments + 1  # nominal: SLIC may return a few segments more or fewer

    def segments(self, model, image: Tensor) -> np.ndarray:
        """SLIC labels [H,W] in 0..K-1 of one normalised image [C,H,W]."""
        from skimage.segmentation import slic

        if self.segment_space == "pixel":
            image = model.denormalize(image[None])[0].clamp(0, 1)
        channels_last = np.moveaxis(image.detach().cpu().double().numpy(), 0, -1)
        labels = slic(
            channels_last, n_segments=self.n_segments, compactness=self.compactness, start_label=0
        )
        return np.unique(labels, return_inverse=True)[1].reshape(labels.shape)

    def perturbed(self, model, image: Tensor, saliency: Tensor) -> Tensor:
        """x_1..x_K [K,C,H,W] of one image: its top k segments at the baseline."""
        labels = torch.from_numpy(self.segments(model, image)).to(image.device)
        count = int(labels.max()) + 1
        flat = labels.flatten()
        sums = torch.zeros(count, dtype=torch.float64, device=image.device)
        sums.index_add_(0, flat, saliency.double().flatten())
        means = sums / torch.bincount(flat, minlength=count).double()
        order = rank_pixels(means.view(1, 1, count), image[None], self.seed)[0]  # segments
        rank = torch.empty_like(order)
        rank[order] = torch.arange(count, device=order.device)
        pixel_rank = rank.to(image.device)[labels]  # [H,W]: rank of each pixel's segment
        if self.baseline != "current_mean":
            base = torch.zeros_like(image)
            if self.baseline == "black":
                base = model.normalize(base[None])[0]
            k = torch.arange(1, count + 1, device=image.device).view(-1, 1, 1, 1)
            return torch.where(pixel_rank[None, None] < k, base, image)
        steps, current = [], image
        for r in range(count):  # Quantus: the baseline is the mean of the image so far
            current = torch.where(pixel_rank == r, current.mean(), current)
            steps.append(current)
        return torch.stack(steps)

    def score(self, *, model, images, targets, saliency, masks):
        original = target_probabilities(model, images, targets, self.batch_size).double().cpu()
        pending, owners, probs = [], [], []

        def flush():
            rows = torch.cat(pending)
            who = torch.cat(owners)
            probs.append(
                target_probabilities(model, rows, targets.to(rows.device)[who], self.batch_size)
            )
            pending.clear()
            owners.clear()

        counts = []
        for i in range(len(images)):
            rows = self.perturbed(model, images[i], saliency[i])
            counts.append(len(rows))
            pending.append(rows)
            owners.append(torch.full((len(rows),), i, device=rows.device))
            if sum(len(p) for p in pending) >= max(self.batch_size, 256):
                flush()
        if pending:
            flush()
        flat = torch.cat(probs).double().cpu()
        scores = []
        for i, curve in enumerate(torch.split(flat, counts)):
            p = curve / original[i]  # p_1..p_K
            k = len(p)
            if self.aoc == "quantus":
                scores.append(k - torch.trapezoid(p))
            else:
                scores.append(1 - (1.0 + p.sum() - 0.5 - p[-1] / 2) / k)  # p_0 = 1 included
        return {"irof": torch.stack(scores)}
