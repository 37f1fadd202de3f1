"""Shared machinery of the insertion / deletion games (Petsiuk et al., RISE, BMVC 2018): the
substrates, the curve of target scores as pixels move from a start image to a finish image in the
map's order, and the AUC, batched over images and steps.

Every (image, step) pair is one row; rows are built a chunk at a time on the images' device and
go through the model in forwards of ``batch_size`` rows, so memory stays bounded by the chunk
while the model sees few large batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from benchmark.maps import generators
from metrics import Metric, rank_pixels, setting, target_probabilities

SUBSTRATES = ("mean", "black", "blur", "minimum", "uniform")
OUTPUTS = ("probability", "logit")


@lru_cache(maxsize=8)
def _rise_kernel(size: int, sigma: float) -> np.ndarray:
    """RISE's ``gkern``: ``scipy.ndimage.gaussian_filter`` of a centred delta on a size x size grid
    (scipy's reflect boundary folds the tails back in, so it is not a truncated Gaussian)."""
    from scipy.ndimage import gaussian_filter

    delta = np.zeros((size, size))
    delta[size // 2, size // 2] = 1.0
    return gaussian_filter(delta, sigma)


def rise_blur(images: Tensor, size: int = 11, sigma: float = 5.0) -> Tensor:
    """RISE's insertion substrate: each channel convolved with :func:`_rise_kernel`, zero padding
    of ``size // 2`` (in whatever space ``images`` are: RISE blurs the normalised tensor)."""
    channels = images.shape[1]
    kernel = torch.as_tensor(_rise_kernel(size, sigma), dtype=images.dtype, device=images.device)
    kernel = kernel.expand(channels, 1, size, size)
    return F.conv2d(images, kernel, padding=size // 2, groups=channels)


def substrate(
    model, images: Tensor, kind: str, blur_size: int, blur_sigma: float, seed: int = 0
) -> Tensor:
    """``mean``: 0 in normalised space (the dataset mean colour); ``black``: 0 in pixel space;
    ``blur``: :func:`rise_blur` of the normalised image; ``minimum``: the image's own minimum over
    all channels and pixels of the normalised input (Quantus's "black"); ``uniform``: i.i.d.
    U[0, 1) pixels, every channel, normalised (Samek et al.'s noise), drawn per image from
    :func:`benchmark.maps.generators` (``seed`` and the image's bytes: batch-independent)."""
    if kind == "mean":
        return torch.zeros_like(images)
    if kind == "black":
        return model.normalize(torch.zeros_like(images))
    if kind == "minimum":
        return images.amin(dim=(1, 2, 3), keepdim=True).expand_as(images).clone()
    if kind == "uniform":
        noise = [torch.rand(images.shape[1:], generator=g) for g in generators(images, seed)]
        return model.normalize(torch.stack(noise).to(images))
    return rise_blur(images, blur_size, blur_sigma)


def step_counts(steps: int, n: int) -> Tensor:
    """Pixels moved after step k = 0..steps: ``floor(k * n / steps)`` (RISE's ``k * step`` when
    ``steps`` divides ``n``)."""
    return torch.tensor([k * n // steps for k in range(steps + 1)])


@torch.no_grad()
def target_logits(model, images: Tensor, targets: Tensor, batch_size: int) -> Tensor:
    """The target's logit for each image, in forwards of ``batch_size``."""
    out = [
        model(images[s : s + batch_size]).float().gather(1, targets[s : s + batch_size, None])[:, 0]
        for s in range(0, len(images), batch_size)
    ]
    return torch.cat(out)


def game_curves(
    model,
    start: Tensor,
    finish: Tensor,
    order: Tensor,
    targets: Tensor,
    counts: Tensor,
    *,
    batch_size: int,
    output: str = "probability",
    chunk_rows: int = 256,
) -> Tensor:
    """Target scores [B, P]: row (i, k) is ``start[i]`` with its ``counts[k]`` first pixels of
    ``order[i]`` taken from ``finish[i]``; ``counts`` is [P] (every image) or [B, P] (per image,
    e.g. regions of unequal size)."""
    batch, channels, height, width = start.shape
    device = start.device
    n = height * width
    positions = torch.empty_like(order)  # rank of every pixel: inverse of the ordering
    positions.scatter_(1, order, torch.arange(n, device=order.device).expand(batch, n))
    positions, targets = positions.to(device), targets.to(device)
    counts = counts.to(device).expand(batch, -1)
    points = counts.shape[1]
    rows = torch.arange(batch * points, device=device)
    image_of, step_of = rows // points, rows % points
    chunk_rows = max(chunk_rows, batch_size)
    scores = []
    for s in range(0, len(rows), chunk_rows):
        i, k = image_of[s : s + chunk_rows], step_of[s : s + chunk_rows]
        moved = (positions[i] < counts[i, k][:, None]).view(-1, 1, height, width)
        perturbed = torch.where(moved, finish[i], start[i])
        if output == "probability":
            scores.append(target_probabilities(model, perturbed, targets[i], batch_size))
        else:
            scores.append(target_logits(model, perturbed, targets[i], batch_size))
    return torch.cat(scores).view(batch, points)


def check_choices(substrate_name: str, output: str) -> None:
    """A ValueError listing the choices when the substrate or the output is unknown."""
    if substrate_name not in SUBSTRATES:
        raise ValueError(
            f"unknown substrate {substrate_name!r}: choose one of {', '.join(SUBSTRATES)}"
        )
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}: choose one of {', '.join(OUTPUTS)}")


def trapezoid_auc(curve: Tensor) -> Tensor:
    """RISE's ``auc``: ``(sum - a_0/2 - a_N/2) / N`` over N steps = the trapezoid rule over the
    fraction axis 0, 1/N, ..., 1."""
    steps = curve.shape[1] - 1
    return (curve.sum(1) - curve[:, 0] / 2 - curve[:, -1] / 2) / steps


@dataclass
class GameMetric(Metric):
    """Base of ``insertion`` and ``deletion`` (the subclass sets the direction of the game)."""

    insert: ClassVar[bool]
    substrate: str = "mean"
    steps: int = 224  # RISE: 224 pixels per step on 224x224 images = 224 steps
    output: str = "probability"  # softmax probability of the target (RISE) or its logit
    blur_size: int = 11  # RISE's insertion blur kernel (for substrate="blur")
    blur_sigma: float = 5.0
    seed: int = 0  # tie-break of the ranking
    batch_size: int = setting(64)

    def __post_init__(self) -> None:
        check_choices(self.substrate, self.output)
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")

    def cost(self) -> int:
        return self.steps + 1  # one forward per point of the curve, the unperturbed one included

    def curves(self, model, images: Tensor, targets: Tensor, saliency: Tensor) -> Tensor:
        """[B, steps + 1] target scores along the game."""
        height, width = images.shape[-2:]
        order = rank_pixels(saliency, images, self.seed)
        base = substrate(model, images, self.substrate, self.blur_size, self.blur_sigma, self.seed)
        start, finish = (base, images) if self.insert else (images, base)
        counts = step_counts(self.steps, height * width)
        return game_curves(
            model,
            start,
            finish,
            order,
            targets,
            counts,
            batch_size=self.batch_size,
            output=self.output,
        )

    def score(self, *, model, images, targets, saliency, masks):
        curve = self.curves(model, images, targets, saliency).double().cpu()
        return {"auc": trapezoid_auc(curve)}
