"""Attention capture for the rollout plugins (Abnar & Zuidema, 2020, https://arxiv.org/abs/2005.00928;
Chefer et al., 2021, https://arxiv.org/abs/2012.09838): timm ViT attention maps and the patch grid.

The attention probabilities softmax(q k^T / sqrt(d)) [B, heads, T, T] of every timm ``Attention``
module are read at the input of its ``attn_drop`` (identity in eval mode), which timm only calls
on its unfused path: :func:`captured_attention` switches ``fused_attn`` off on every such module
for the duration of one forward and restores each module's own flag afterwards, also on errors.
Tokens are ``[class token, register / distillation tokens, patch tokens]``: the patch tokens start
at ``num_prefix_tokens`` and fill the patch grid row by row.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from benchmark.models import FeatureLayerError


def _attention_modules(net: nn.Module) -> list[nn.Module]:
    from timm.layers import Attention

    return [m for m in net.modules() if isinstance(m, Attention)]


def unsupported(model) -> str | None:
    """None if ``model`` is a timm ViT whose head reads the class token, else why rollout cannot apply."""
    net = model.net
    if not _attention_modules(net):
        if any("WindowAttention" in type(m).__name__ for m in net.modules()):
            return (
                f"model {model.name!r} has windowed attention (Swin): attention within local "
                "windows has no class token attending to every patch, so there is no rollout "
                "to read; use grad_cam"
            )
        return (
            f"model {model.name!r} has no timm ViT self-attention (timm.layers.Attention) to "
            "roll out: the method applies to ViT / DeiT-style transformers; use grad_cam"
        )
    if getattr(net, "cls_token", None) is None or getattr(net, "global_pool", None) != "token":
        return (
            f"model {model.name!r} does not classify from its class token "
            f"(global_pool={getattr(net, 'global_pool', None)!r}): rollout reads the class token's "
            "row, which only carries the prediction with a class-token head"
        )
    if not hasattr(net, "patch_embed") or not hasattr(net, "num_prefix_tokens"):
        return f"model {model.name!r} has no timm patch embedding to place the tokens on a grid"
    return None


def check_supported(model) -> None:
    reason = unsupported(model)
    if reason is not None:
        raise FeatureLayerError(reason)


def patch_grid(net: nn.Module, image_size: tuple[int, int]) -> tuple[int, int]:
    """The (h, w) patch grid of an image size, as timm's patch embedding computes it."""
    embed = net.patch_embed
    if getattr(embed, "dynamic_img_size", False) or getattr(net, "dynamic_img_size", False):
        return tuple(embed.dynamic_feat_size(tuple(image_size)))
    return tuple(embed.grid_size)


@contextlib.contextmanager
def captured_attention(net: nn.Module) -> Iterator[list[Tensor]]:
    """Yields a list that fills, in forward order, with each block's attention [B, heads, T, T]
    (in the autograd graph) while timm's fused attention is off; every flag is restored on exit."""
    modules = _attention_modules(net)
    flags = [m.fused_attn for m in modules]
    captured: list[Tensor] = []
    handles = [
        m.attn_drop.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        for m in modules
    ]
    try:
        for m in modules:
            m.fused_attn = False
        yield captured
    finally:
        for handle in handles:
            handle.remove()
        for m, flag in zip(modules, flags, strict=True):
            m.fused_attn = flag


def require_attention(attentions: list[Tensor], net: nn.Module) -> list[Tensor]:
    """The captured maps, or an error if a block's attention was not seen (e.g. a subclass of
    timm's Attention whose forward does not go through ``attn_drop``)."""
    expected = len(_attention_modules(net))
    if len(attentions) != expected:
        raise FeatureLayerError(
            f"captured {len(attentions)} attention maps from {expected} timm Attention modules: "
            "their forward does not compute attention through attn_drop on the unfused path"
        )
    return attentions


def class_token_map(relevance: Tensor, net: nn.Module, image_size: tuple[int, int]) -> Tensor:
    """Row 0 (the class token) of a token-to-token matrix [B, T, T], over the patch tokens only,
    as a [B, h, w] patch-grid map."""
    prefix = int(net.num_prefix_tokens)
    grid = patch_grid(net, image_size)
    tokens = relevance.shape[-1]
    if tokens - prefix != grid[0] * grid[1]:
        raise FeatureLayerError(
            f"{tokens} tokens minus {prefix} prefix tokens do not fill the {grid[0]}x{grid[1]} "
            "patch grid: the model's attention does not run over its patch tokens"
        )
    return relevance[:, 0, prefix:].reshape(-1, *grid)


def identity_like(attention: Tensor) -> Tensor:
    """The identity [T, T] for an attention map [B, heads, T, T]."""
    return torch.eye(attention.shape[-1], dtype=attention.dtype, device=attention.device)
