"""Helpers shared by explainer plugins (not a plugin: the leading underscore keeps it out)."""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from torch import Tensor


def upsample(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """[B,h,w] -> [B,H,W] by bilinear interpolation (half-pixel centres, as cv2.resize)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=tuple(size), mode="bilinear", align_corners=False)[
        :, 0
    ]


def target_scores(logits: Tensor, targets: Tensor) -> Tensor:
    """The target class's logit for each image, [B]."""
    return logits.gather(1, targets.view(-1, 1).long()).squeeze(1)


def image_seeds(images: Tensor, seed: int) -> list[int]:
    """One 63-bit seed per image from ``seed`` and the image's bytes.

    Seeding by content makes randomised explainers deterministic *and* batch-independent: an image
    gets the same random stream whether it is explained alone or inside any batch.
    """
    data = images.detach().to("cpu", torch.float32).contiguous().numpy()
    seeds = []
    for image in data:
        digest = hashlib.blake2b(image.tobytes(), digest_size=8, key=str(seed).encode()).digest()
        seeds.append(int.from_bytes(digest, "little") >> 1)
    return seeds


def generators(images: Tensor, seed: int) -> list[torch.Generator]:
    """A CPU ``torch.Generator`` per image, seeded by :func:`image_seeds`."""
    return [torch.Generator().manual_seed(s) for s in image_seeds(images, seed)]
