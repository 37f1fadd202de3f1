"""Attention rollout (Abnar & Zuidema, ACL 2020, https://arxiv.org/abs/2005.00928).

Per block l, the attention A_l [T, T] averaged over heads, with the residual connection modelled
by the identity and rows re-normalised: Ã_l = (A_l + I) / rowsum(A_l + I) (= 0.5 A_l + 0.5 I,
as rows of A_l sum to 1). The rollout over L blocks is the product R = Ã_L ... Ã_2 Ã_1 (the
paper's Ã(l_i) = A(l_i) Ã(l_{i-1})); the map is the class token's row of R over the patch
tokens (after timm's ``num_prefix_tokens``: class, register and distillation tokens), on the
patch grid, upsampled bilinearly to the image. Class-agnostic: the target is not used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from explainers import Explainer, register_explainer, upsample
from explainers._attention import (
    captured_attention,
    check_supported,
    class_token_map,
    identity_like,
    require_attention,
    unsupported,
)


def rollout(attentions: list[Tensor]) -> Tensor:
    """Attention maps [B, heads, T, T] per block, in forward order -> the rollout [B, T, T]."""
    eye = identity_like(attentions[0])
    result = eye
    for attention in attentions:
        mixed = attention.mean(dim=1) + eye  # head mean, plus the identity (residual)
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)  # rows re-normalised
        result = mixed @ result  # Ã(l_i) = A(l_i) Ã(l_{i-1})
    return result


@register_explainer("attention_rollout", tags=("attention", "transformer"))
@dataclass
class AttentionRollout(Explainer):
    """Attention rollout: the class token's row of the product of head-mean (A + I), row-normalised."""

    version = "1"

    def cost(self) -> int:
        return 1  # one forward pass

    def supports(self, model) -> str | None:
        return unsupported(model)

    @torch.no_grad()
    def explain(self, model, images, targets):
        check_supported(model)
        with captured_attention(model.net) as attentions:
            model(images)
        relevance = rollout([a.double() for a in require_attention(attentions, model.net)])
        maps = class_token_map(relevance, model.net, images.shape[-2:])
        return upsample(maps, images.shape[-2:])
