"""Tensor helpers shared by explainers and metrics: one of each, so both sides agree.

* :func:`resize_maps`: saliency maps to another resolution, bilinear with half-pixel centres (as
  ``cv2.resize``), the one resize every explainer upsampling and every metric uses;
* :func:`image_seeds` / :func:`generators`: per-image random streams from a seed and the image's
  bytes, so randomised code is deterministic *and* batch-independent (an image draws the same
  numbers alone or inside any batch);
* :func:`target_scores`: the explained class's logit of each image.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from torch import Tensor


def resize_maps(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """[B,h,w] -> [B,H,W] float32, bilinear with half-pixel centres; a no-op at the same size."""
    maps = maps.float()
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    resized = F.interpolate(maps[:, None], size=tuple(size), mode="bilinear", align_corners=False)
    return resized[:, 0]


def image_seeds(images: Tensor, seed: int) -> list[int]:
    """One 63-bit seed per image: a keyed BLAKE2b hash of the image's float32 bytes."""
    data = images.detach().to("cpu", torch.float32).contiguous().numpy()
    key = str(seed).encode()
    digests = (hashlib.blake2b(image.tobytes(), digest_size=8, key=key).digest() for image in data)
    return [int.from_bytes(d, "little") >> 1 for d in digests]


def generators(images: Tensor, seed: int) -> list[torch.Generator]:
    """A CPU ``torch.Generator`` per image, seeded by :func:`image_seeds`."""
    return [torch.Generator().manual_seed(s) for s in image_seeds(images, seed)]


def target_scores(logits: Tensor, targets: Tensor) -> Tensor:
    """The target class's logit for each image, [B]."""
    return logits.gather(1, targets.view(-1, 1).long()).squeeze(1)


__all__ = ["generators", "image_seeds", "resize_maps", "target_scores"]
