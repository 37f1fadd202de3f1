"""Helpers of the mask-based metrics: maps resized to the mask, empty masks as NaN."""

from __future__ import annotations

import torch
from torch import Tensor

from metrics._checks import check_inputs
from metrics._ranking import resize_maps


def prepare(
    metric: str, images: Tensor, saliency: Tensor, masks: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Validate; return (maps resized to the masks [B,H,W] float32 on CPU, masks bool [B,H,W] on
    CPU, non-empty [B] bool). Empty masks give NaN scores: skipped and counted by the runner."""
    check_inputs(images, saliency, masks, needs_masks=True, metric=metric)
    assert masks is not None
    masks = masks.detach().to("cpu").bool()
    maps = resize_maps(saliency.detach().to("cpu"), tuple(masks.shape[-2:]))
    return maps, masks, masks.flatten(1).any(1)


def nan_where_empty(values: Tensor, nonempty: Tensor) -> Tensor:
    return torch.where(nonempty, values.float(), torch.full_like(values.float(), float("nan")))
