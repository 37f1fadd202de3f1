"""Gradient-weighted attention rollout (Chefer, Gur & Wolf, CVPR 2021, https://arxiv.org/abs/2012.09838).

Transformer Interpretability Beyond Attention Visualization's propagation rule for
self-attention, with the attention map itself as the relevance of each block (the form of
Chefer et al.'s follow-up, ICCV 2021, https://arxiv.org/abs/2103.15679, eqs. 5-6; the CVPR
paper's eq. 13 uses the LRP relevance of the attention map there): per block b, with A_b
[heads, T, T] its attention probabilities and grad A_b = d y_t / d A_b the gradient of the target
logit,

    Ā_b = E_h[(grad A_b ⊙ A_b)^+]           (positive part, then the mean over heads)
    R <- R + Ā_b R,  starting from R = I    (blocks in forward order)

so R = (I + Ā_L) ... (I + Ā_1). The map is the class token's row of R over the patch tokens
(after timm's ``num_prefix_tokens``), on the patch grid, upsampled bilinearly to the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from explainers import Explainer, register_explainer, target_scores, upsample
from explainers._attention import (
    captured_attention,
    check_supported,
    class_token_map,
    identity_like,
    require_attention,
    unsupported,
)


def gradient_rollout(attentions: list[Tensor], gradients: list[Tensor]) -> Tensor:
    """Attention maps and their gradients [B, heads, T, T] per block, forward order -> R [B, T, T]."""
    relevance = identity_like(attentions[0])
    for attention, gradient in zip(attentions, gradients, strict=True):
        weighted = (gradient * attention).clamp(min=0).mean(dim=1)  # E_h[(grad A ⊙ A)^+]
        relevance = relevance + weighted @ relevance  # R = R + Ā R
    return relevance


@register_explainer("gradient_rollout", tags=("attention", "gradient", "transformer"))
@dataclass
class GradientRollout(Explainer):
    """Chefer et al.'s gradient-weighted rollout: R = R + E_h[(grad A ⊙ A)^+] R, class-token row."""

    version = "1"

    def cost(self) -> int:
        return 2  # one forward, one backward

    def supports(self, model) -> str | None:
        return unsupported(model)

    def explain(self, model, images, targets):
        check_supported(model)
        # The input requires grad so every attention map is in the graph, even with frozen weights.
        x = images.detach().requires_grad_(True)
        with torch.enable_grad(), captured_attention(model.net) as attentions:
            scores = target_scores(model(x), targets)
            gradients = torch.autograd.grad(scores.sum(), require_attention(attentions, model.net))
        relevance = gradient_rollout(
            [a.detach().double() for a in attentions], [g.double() for g in gradients]
        )
        maps = class_token_map(relevance, model.net, images.shape[-2:])
        return upsample(maps, images.shape[-2:])
