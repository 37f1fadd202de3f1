"""Max-sensitivity (Yeh, Hsieh, Suggala, Inouye & Ravikumar, "On the (In)fidelity and Sensitivity
of Explanations", NeurIPS 2019, arXiv 1901.09392): the largest relative change of the map under
small input perturbations.

Definition. With ``S = Phi(x)`` the map being scored (bilinearly resized to the image) and
``Phi`` the explainer, for each of ``samples`` perturbations ``e_k`` drawn uniformly from the L_inf
ball of radius ``radius`` in [0, 1] pixel units (each pixel value of each channel i.i.d. in
``[-radius, radius]``, no clipping to the valid range), converted to the model's normalised input
space by dividing channel ``c`` by the model's ``std_c``, the explainer re-explains ``x + e_k`` for
the same target class (whatever the model now predicts), and

    max_sensitivity = max_k ||Phi(x + e_k) - Phi(x)||_F / ||Phi(x)||_F,

Frobenius norms over the pixels of the raw maps. The draws come from a generator seeded by
``seed`` and the image's bytes (the same alone or in any batch). Lower is better (a robust
explanation). An all-zero map makes the ratio undefined: NaN (not applicable, counted by the
runner). Quantus's default draws 200 samples of +-0.2 in the normalised input (so the radius
depends on the normalisation) and divides by the norm likewise; captum's ``sensitivity_max``
does not divide (radius 0.02, 10 samples: our defaults, with the radius in pixel units).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from benchmark.maps import generators
from metrics import Metric, register_metric
from metrics._randomisation import explain


@register_metric("max_sensitivity", tags=("robustness",))
@dataclass
class MaxSensitivity(Metric):
    """Largest relative change ||Phi(x+e) - Phi(x)|| / ||Phi(x)|| over seeded L_inf perturbations."""

    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[dict[str, bool]] = {"max_sensitivity": False}
    needs_explainer: ClassVar[bool] = True
    fast_params: ClassVar[dict[str, int]] = {"samples": 3}

    radius: float = 0.02  # L_inf radius in [0, 1] pixel units
    samples: int = 10
    seed: int = 0  # the perturbations

    def __post_init__(self) -> None:
        if self.samples < 1 or self.radius < 0:
            raise ValueError("max_sensitivity needs samples >= 1 and radius >= 0")

    def cost(self, explainer=None, model=None) -> int:
        """One re-explanation per perturbation."""
        return self.samples * (explainer.cost() if explainer is not None else 1)

    def perturbations(self, model, images: Tensor) -> Tensor:
        """The draws ``e_k`` [B, samples, C, H, W] in the model's normalised input space."""
        shape = (self.samples, *images.shape[1:])
        pixels = torch.stack(
            [
                (torch.rand(shape, generator=g) * 2 - 1) * self.radius
                for g in generators(images, self.seed)
            ]
        ).to(images.device, images.dtype)
        std = torch.tensor(model.std, dtype=images.dtype, device=images.device)
        return pixels / std.view(1, 1, -1, 1, 1)

    def score(self, *, model, images, targets, saliency, masks, explainer):
        reference = saliency.double().cpu().flatten(1)
        norm = reference.norm(dim=1)
        noise = self.perturbations(model, images)
        changes = torch.stack(
            [
                (
                    explain(explainer, model, images + noise[:, k], targets).flatten(1) - reference
                ).norm(dim=1)
                for k in range(self.samples)
            ]
        )  # [samples, B]
        ratio = changes.amax(0) / torch.where(norm > 0, norm, 1.0)
        return {"max_sensitivity": torch.where(norm > 0, ratio, torch.nan)}
