"""Gradient x input (Shrikumar et al., 2016, https://arxiv.org/abs/1605.01713): the explainer template.

Copy this file to ``explainers/<name>.py``, rename the registry name and the class, and replace
the method: it passes the contract tests as it stands. The module docstring opens with the
method's citation; the class docstring's first line is what ``python -m benchmark ls explainers``
shows. Files starting with ``_`` (like this one) are never registered.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from explainers import Explainer, register_explainer, target_scores


@register_explainer("my_method", tags=("gradient",))
@dataclass
class MyMethod(Explainer):
    """Input gradient of the target logit times the input, summed over channels (signed)."""

    version = "1"  # bump whenever the maps would change
    fast_params = {}  # smaller budgets for the contract tests, e.g. {"num_samples": 8}

    # Hyperparameters are dataclass fields: recorded with the results, part of the cache key.
    # A field that never changes the numbers (a batch size) is ``name: int = setting(64)``.
    scale: float = 1.0

    def cost(self) -> int:
        return 2  # model evaluations per image: one forward, one backward

    def explain(self, model, images, targets):
        with torch.enable_grad():
            x = images.detach().requires_grad_(True)
            (grads,) = torch.autograd.grad(target_scores(model(x), targets).sum(), x)
        return (self.scale * grads * x).sum(dim=1).detach().float()  # [B,H,W], raw scores
