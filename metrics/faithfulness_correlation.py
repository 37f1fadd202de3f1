"""Faithfulness correlation (Bhatt, Weller & Moura, "Evaluating and Aggregating Feature-based Model
Explanations", IJCAI 2020, arXiv 2005.00631; as in Quantus's ``FaithfulnessCorrelation``).

Definition. The map is resized bilinearly to the image (the base class). In each of ``runs``
(default 100) runs, a random subset ``T`` of ``subset_size`` features (default 224) is drawn without
replacement and set to the baseline; with ``g`` the target's logit (default; ``output`` is a
parameter, ``probability`` = softmax), the run gives the pair ``(sum_{i in T} S_i,
g(x) - g(x with T at the baseline))``. The score is the Pearson correlation of the two over the
runs, in [-1, 1]; higher is better. If either side has no variance (e.g. a constant map, whose
subset sums are all equal) the correlation is undefined and scored 0 (no linear relation shown).

Features: ``pixel`` (the default: a pixel's channels together, attribution ``S_i``) or ``value``
(each channel value on its own, the map broadcast over channels: Quantus's and LATEC's choice,
224 of 150,528 values at 224 px RGB). Baselines: ``mean`` (the default, 0 in normalised space, the
dataset mean colour), ``black`` (0 in pixel space) or ``min`` (the image's smallest normalised value
over all channels: what Quantus calls "black"). Subsets come from a generator seeded per image by
``subset_seed`` and the image's bytes (:func:`benchmark.maps.generators`), never a global RNG
(Quantus draws from numpy's). The field is not called ``seed``: a constant map scores 0 under any
subsets. With ``features="value"``, ``baseline="min"`` and the logit, the score equals Quantus's on
the same subsets (tested). All ``B * runs`` perturbed images go through the model in large batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from benchmark.maps import generators
from metrics import Metric, register_metric, setting, target_probabilities
from metrics._curves import target_logits

FEATURES = ("pixel", "value")
BASELINES = ("mean", "black", "min")
OUTPUTS = ("logit", "probability")


@register_metric("faithfulness_correlation", tags=("faithfulness",))
@dataclass
class FaithfulnessCorrelation(Metric):
    """Pearson correlation, over random subsets, of their attribution sum and the output drop."""

    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[dict[str, bool]] = {"correlation": True}
    needs_masks: ClassVar[bool] = False
    fast_params: ClassVar[dict[str, int]] = {"runs": 8, "subset_size": 20}

    runs: int = 100
    subset_size: int = 224
    features: str = "pixel"
    baseline: str = "mean"
    output: str = "logit"
    subset_seed: int = 0  # the random subsets (per image, from its bytes)
    batch_size: int = setting(64)

    def __post_init__(self) -> None:
        for name, value, choices in (
            ("features", self.features, FEATURES),
            ("baseline", self.baseline, BASELINES),
            ("output", self.output, OUTPUTS),
        ):
            if value not in choices:
                raise ValueError(f"unknown {name} {value!r}: choose one of {', '.join(choices)}")
        if self.runs < 2 or self.subset_size < 1:
            raise ValueError("faithfulness_correlation needs runs >= 2 and subset_size >= 1")

    def cost(self) -> int:
        return self.runs + 1

    def subsets(self, images: Tensor) -> Tensor:
        """Feature indices [B, runs, subset_size], per image from its own generator."""
        n = images[0, 0].numel() * (images.shape[1] if self.features == "value" else 1)
        if self.subset_size > n:
            raise ValueError(f"subset_size {self.subset_size} exceeds the {n} features")
        return torch.stack(
            [
                torch.stack(
                    [torch.randperm(n, generator=g)[: self.subset_size] for _ in range(self.runs)]
                )
                for g in generators(images, self.subset_seed)
            ]
        )

    def score(self, *, model, images, targets, saliency, masks):
        subsets = self.subsets(images)
        return {"correlation": correlation(self, model, images, targets, saliency, subsets)}


def correlation(
    metric: FaithfulnessCorrelation,
    model,
    images: Tensor,
    targets: Tensor,
    saliency: Tensor,
    subsets: Tensor,
    chunk_rows: int = 256,
) -> Tensor:
    """Per-image Pearson correlation [B] for given subsets [B, runs, k] (see the definition)."""
    batch, channels, height, width = images.shape
    device = images.device
    values = metric.features == "value"
    shape = (channels, height, width) if values else (1, height, width)
    attribution = saliency.double().to(device)[:, None].expand(batch, *shape).flatten(1)
    subsets = subsets.to(device)
    sums = attribution[torch.arange(batch, device=device)[:, None, None], subsets].sum(2)  # [B, R]

    if metric.baseline == "mean":
        base = torch.zeros_like(images)
    elif metric.baseline == "black":
        base = model.normalize(torch.zeros_like(images))
    else:
        base = images.flatten(1).amin(1).view(-1, 1, 1, 1).expand_as(images)
    targets = targets.to(device)

    def outputs(x, t):
        if metric.output == "logit":
            return target_logits(model, x, t, metric.batch_size)
        return target_probabilities(model, x, t, metric.batch_size)

    runs = subsets.shape[1]
    rows = torch.arange(batch * runs, device=device)
    image_of, run_of = rows // runs, rows % runs
    chunk_rows = max(chunk_rows, metric.batch_size)
    perturbed_out = []
    for s in range(0, len(rows), chunk_rows):
        i, r = image_of[s : s + chunk_rows], run_of[s : s + chunk_rows]
        chosen = torch.zeros(len(i), attribution.shape[1], dtype=torch.bool, device=device)
        chosen.scatter_(1, subsets[i, r], True)
        chosen = chosen.view(len(i), *shape)
        perturbed_out.append(outputs(torch.where(chosen, base[i], images[i]), targets[i]))
    perturbed = torch.cat(perturbed_out).double().view(batch, runs)
    drops = outputs(images, targets).double()[:, None] - perturbed  # [B, R]
    return pearson(sums, drops).cpu()


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise Pearson correlation of [B, R] pairs; 0 where a side has no variance (its spread
    below 1e-9 of its magnitude: float noise, e.g. of a resized constant map, is no variance)."""
    flat = torch.zeros(len(a), dtype=torch.bool, device=a.device)
    centred = []
    for x in (a, b):
        c = x - x.mean(1, keepdim=True)
        flat |= c.abs().amax(1) <= 1e-9 * x.abs().amax(1)
        centred.append(c)
    a, b = centred
    norm = a.norm(dim=1) * b.norm(dim=1)
    r = (a * b).sum(1) / torch.where(flat, torch.ones_like(norm), norm)
    return torch.where(flat, torch.zeros_like(r), r)
