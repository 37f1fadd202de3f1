"""The ROAD evaluation loop shared by ``road`` and ``road_accuracy``: rank once, impute every
(image, order, fraction) once, run the model on the imputed images in batches.

``2 * len(fractions)`` systems per image. With the model on the CPU they are solved by a
multifrontal Cholesky (:mod:`metrics._multifrontal`) on ``workers`` threads (None: one per core;
an executor may send them elsewhere for a run, :func:`metrics._imputation.imputation_map`);
on an accelerator, there, all systems of ``batch_size // (2 * len(fractions))`` images at once by
multigrid-preconditioned conjugate gradients (:mod:`metrics._multigrid`; same systems, same noise,
equal to float32 precision). The forwards run on the model's device, batched across fractions and
images in chunks of ``batch_size`` images (on the CPU, smaller chunks, one per core: see
``CPU_CHUNK_VALUES``). Both phases are timed into ``timings`` (seconds, added to).
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from benchmark.maps import image_seeds
from benchmark.registry import setting
from benchmark.timing import timed
from metrics import Metric
from metrics._forward import forward
from metrics._imputation import impute_many
from metrics._multigrid import impute_on_device
from metrics._ranking import rank_pixels, top_count, top_masks

ORDERS = ("morf", "lerf")  # most relevant first, least relevant first
FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass
class RoadMetric(Metric):
    """The parameters and evaluation shared by ``road`` and ``road_accuracy``."""

    needs_masks: ClassVar[bool] = False

    fractions: tuple[float, ...] = FRACTIONS
    noise: float = 0.01
    seed: int = 0
    batch_size: int = setting(64)  # model forwards per chunk (bounds memory)
    workers: int | None = setting(None)  # imputation threads; None: one per core

    def __post_init__(self) -> None:
        self.fractions = tuple(float(f) for f in self.fractions)
        self.timings: dict[str, float] = {}  # seconds spent imputing and in model forwards

    fast_params: ClassVar[dict] = {"fractions": (0.3, 0.7)}

    def outputs(self, model, images, targets, saliency, *, pixel_space: bool):
        """:func:`road_outputs` with this metric's parameters."""
        return road_outputs(
            model,
            images,
            targets,
            saliency,
            fractions=self.fractions,
            pixel_space=pixel_space,
            noise=self.noise,
            seed=self.seed,
            batch_size=self.batch_size,
            workers=self.workers,
            timings=self.timings,
        )


def road_outputs(
    model,
    images: Tensor,
    targets: Tensor,
    saliency: Tensor,
    *,
    fractions: Sequence[float],
    pixel_space: bool,
    noise: float,
    seed: int,
    batch_size: int,
    workers: int | None,
    timings: MutableMapping[str, float],
) -> tuple[Tensor, Tensor]:
    """(target probability, top-1 == target) of every imputed image, each [B, 2 orders, F];
    ``saliency`` [B,H,W] at the image's resolution.

    Order 0 (MoRF) removes the ``floor(f*H*W)`` most salient pixels, order 1 (LeRF) the
    ``floor(f*H*W)`` least salient: ``f`` is the fraction removed in both orders. With
    ``pixel_space`` the imputation runs on [0,1] pixels (``model.denormalize``) and the result is
    normalised again before the forward; otherwise it runs on the normalised inputs.
    """
    batch, _, height, width = images.shape
    n = height * width
    order = rank_pixels(saliency, images, seed)
    counts = [top_count(f, n) for f in fractions]
    removed = torch.stack(
        [
            torch.stack([top_masks(order, c, (height, width), most=(o == 0)) for c in counts], 1)
            for o in range(len(ORDERS))
        ],
        1,
    )  # [B, 2, F, H, W]
    base = (model.denormalize(images) if pixel_space else images).detach()
    on_device = solves_on_device(images.device)
    if not on_device:
        removed, base = removed.numpy(), base.to(torch.float64).numpy()
    seeds = image_seeds(images, seed)
    shape = (len(ORDERS), len(fractions))

    probs = torch.empty(batch, *shape)
    correct = torch.empty(batch, *shape, dtype=torch.bool)
    per_image = int(np.prod(shape))
    group = max(1, batch_size // per_image)  # images whose imputations are held at once
    for start in range(0, batch, group):
        stop = min(batch, start + group)
        system_seeds = [
            [seeds[i], o, k]
            for i in range(start, stop)
            for o in range(shape[0])
            for k in range(shape[1])
        ]
        masks = removed[start:stop].reshape(-1, height, width)
        if on_device:
            images_of = base[start:stop].repeat_interleave(per_image, 0)
            x, seconds = timed(
                impute_on_device, images_of, masks, noise, system_seeds, device=images.device
            )
        else:
            tasks = [
                (base[i // per_image + start], mask, noise, s)
                for i, (mask, s) in enumerate(zip(masks, system_seeds, strict=True))
            ]
            imputed, seconds = timed(impute_many, tasks, workers)
            x = torch.from_numpy(np.stack(imputed))
        timings["imputation"] = timings.get("imputation", 0.0) + seconds
        x = x.to(images.device, images.dtype)
        if pixel_space:
            x = model.normalize(x)
        repeated = targets[start:stop].repeat_interleave(per_image).to(images.device)
        p, seconds = timed(forward, model, x, repeated, batch_size, device=images.device)
        timings["forward"] = timings.get("forward", 0.0) + seconds
        probs[start:stop] = p[0].view(-1, *shape).cpu()
        correct[start:stop] = p[1].view(-1, *shape).cpu()
    return probs, correct


def solves_on_device(device: torch.device) -> bool:
    """Impute where the model runs (multigrid conjugate gradients) on an accelerator; on the CPU,
    the multifrontal Cholesky on threads is faster."""
    return device.type != "cpu"
