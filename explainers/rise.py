"""RISE: Randomized Input Sampling for Explanation (Petsiuk, Das & Saenko, BMVC 2018, https://arxiv.org/abs/1806.07421).

The saliency of pixel u is the model's expected confidence when u is kept (the paper's eq. 6),
estimated with N random masks M_i:

    S(u) = 1 / (N p) * sum_i f_c(x ⊙ M_i) M_i(u)

with f_c the softmax probability of the target class. The masks are the paper's smooth masks
(section 3.2): a binary s x s grid, each cell 1 with probability p, upsampled bilinearly to
(s+1) C_H x (s+1) C_W with the cell size C = ceil(H / s) x ceil(W / s) (ceil as in the authors'
code: with the paper's floor, an H x W crop does not fit at every shift when s does not divide H),
then cropped to H x W at a shift drawn uniformly from {0..C_H-1} x {0..C_W-1}. Masking multiplies
the model's normalised input, as the authors' code does: a removed pixel takes the value 0 there,
the dataset's mean colour. Bilinear upsampling is torch's (half-pixel centres, edge values held at
the border; the authors' skimage call reflects there instead).

Each image's masks come from its own generator (``seed`` and the image's content), drawn in one go
(all grids, then the row shifts, then the column shifts), so a map does not depend on the batch it
is in nor on ``batch_size``, the number of masked images per forward pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from explainers import Explainer, generators, register_explainer, setting


def draw_masks(
    generator: torch.Generator, count: int, grid: int, probability: float, size: tuple[int, int]
) -> tuple[Tensor, Tensor, Tensor]:
    """The random part of ``count`` smooth masks: binary grids [N,s,s] and row / column shifts [N]."""
    cells = [math.ceil(side / grid) for side in size]
    grids = torch.rand(count, grid, grid, generator=generator) < probability
    rows = torch.randint(0, cells[0], (count,), generator=generator)
    cols = torch.randint(0, cells[1], (count,), generator=generator)
    return grids, rows, cols


def smooth_masks(grids: Tensor, rows: Tensor, cols: Tensor, size: tuple[int, int]) -> Tensor:
    """Binary grids [N,s,s] upsampled bilinearly to (s+1) * cell and cropped at the shifts -> [N,H,W]."""
    grid = grids.shape[-1]
    height, width = size
    upsampled_size = tuple((grid + 1) * math.ceil(side / grid) for side in size)
    upsampled = F.interpolate(
        grids[:, None].float(), size=upsampled_size, mode="bilinear", align_corners=False
    )[:, 0]
    index = torch.arange(len(grids), device=grids.device)[:, None, None]
    row_index = (rows[:, None] + torch.arange(height, device=grids.device))[:, :, None]
    col_index = (cols[:, None] + torch.arange(width, device=grids.device))[:, None, :]
    return upsampled[index, row_index, col_index]


@register_explainer("rise", tags=("perturbation", "sampling"))
@dataclass
class Rise(Explainer):
    """RISE: sum of random smooth masks weighted by the target's probability on the masked image."""

    version = "1"
    fast_params = {"num_masks": 8, "grid": 3}

    num_masks: int = 4000  # N
    grid: int = 7  # s: the mask grid is s x s
    keep_probability: float = 0.5  # p: each grid cell is kept with this probability
    seed: int = 0
    batch_size: int = setting(64)  # masked images per forward pass

    def __post_init__(self) -> None:
        if not 0 < self.keep_probability <= 1:
            raise ValueError(
                f"keep_probability={self.keep_probability} must be in (0, 1]: the map divides by it"
            )
        if self.num_masks < 1 or self.grid < 1 or self.batch_size < 1:
            raise ValueError("num_masks, grid and batch_size must be positive integers")

    def cost(self) -> int:
        return self.num_masks  # one forward pass per masked image

    @torch.no_grad()
    def explain(self, model, images, targets):
        size = tuple(images.shape[-2:])
        maps = []
        for image, target, generator in zip(
            images.detach(), targets.tolist(), generators(images, self.seed), strict=True
        ):
            draws = draw_masks(generator, self.num_masks, self.grid, self.keep_probability, size)
            total = torch.zeros(size, dtype=torch.float64, device=images.device)
            for start in range(0, self.num_masks, self.batch_size):
                grids, rows, cols = (
                    d[start : start + self.batch_size].to(images.device) for d in draws
                )
                masks = smooth_masks(grids, rows, cols, size)
                probabilities = model.probabilities(image[None] * masks[:, None].to(image.dtype))
                # sum_i f_c(x ⊙ M_i) M_i over this batch of masks
                total += torch.einsum(
                    "n,nhw->hw", probabilities[:, target].double(), masks.double()
                )
            maps.append(total / (self.num_masks * self.keep_probability))
        return torch.stack(maps).float()
