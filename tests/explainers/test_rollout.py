"""Attention rollout and gradient-weighted rollout: the propagation rules on hand-built attention,
the capture against attention recomputed from each block's weights, prefix / register tokens and
dynamic image sizes, and timm's fused_attn flags restored."""

from __future__ import annotations

import pytest
import timm
import torch

import explainers
from benchmark.models import Classifier
from explainers import FeatureLayerError, upsample
from explainers._attention import captured_attention
from explainers.attention_rollout import rollout
from explainers.gradient_rollout import gradient_rollout
from tests.models import TINY_MODELS


def test_rollout_of_two_hand_built_blocks_is_the_product_of_the_normalised_a_plus_i():
    # one head, two tokens: (A + I) row-normalised is 0.5 A + 0.5 I
    a1 = torch.tensor([[0.5, 0.5], [0.0, 1.0]])  # -> [[0.75, 0.25], [0, 1]]
    a2 = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # -> [[0.5, 0.5], [0.5, 0.5]]
    result = rollout([a1[None, None], a2[None, None]])[0]
    expected = torch.tensor([[0.375, 0.625], [0.375, 0.625]])  # block 2's matrix times block 1's
    torch.testing.assert_close(result, expected)
    # several heads are averaged first; rows of the rollout still sum to 1
    g = torch.Generator().manual_seed(0)
    attentions = [torch.rand(2, 3, 4, 4, generator=g).softmax(dim=-1) for _ in range(2)]
    normalised = [(a.mean(dim=1) + torch.eye(4)) / 2 for a in attentions]
    torch.testing.assert_close(rollout(attentions), normalised[1] @ normalised[0])
    torch.testing.assert_close(rollout(attentions).sum(dim=-1), torch.ones(2, 4))


def test_gradient_rollout_of_two_hand_built_blocks():
    # Ā = mean over heads of (grad ⊙ A)^+; R = R + Ā R from R = I, i.e. (I + Ā_2)(I + Ā_1)
    a = torch.tensor([[[0.5, 0.5], [0.2, 0.8]], [[1.0, 0.0], [0.5, 0.5]]])  # two heads
    grad = torch.tensor([[[2.0, -2.0], [1.0, 1.0]], [[1.0, 3.0], [-4.0, 2.0]]])
    # block 1: heads (grad ⊙ A)^+ = [[1, 0], [0.2, 0.8]] and [[1, 0], [0, 1]]
    abar1 = torch.tensor([[1.0, 0.0], [0.1, 0.9]])
    # block 2 (attention columns swapped): [[1, 0], [0.8, 0.2]] and [[0, 3], [0, 1]]
    abar2 = torch.tensor([[0.5, 1.5], [0.4, 0.6]])
    result = gradient_rollout([a[None], a[None].flip(-1)], [grad[None], grad[None]])[0]
    eye = torch.eye(2)
    torch.testing.assert_close(result, (eye + abar2) @ (eye + abar1))
    torch.testing.assert_close(result, torch.tensor([[3.15, 2.85], [0.96, 3.04]]))


def _vit(reg_tokens=0, **kwargs):
    torch.manual_seed(0)
    net = timm.create_model("test_vit", num_classes=5, img_size=64, reg_tokens=reg_tokens, **kwargs)
    return Classifier(net, (0.5,) * 3, (0.5,) * 3, (3, 64, 64), "vit")


def _recomputed_attention(model, images):
    """Each block's attention probabilities from its own qkv weights, at the tokens entering it."""
    inputs = []
    handles = [
        block.norm1.register_forward_hook(lambda _m, _i, out: inputs.append(out))
        for block in model.net.blocks
    ]
    try:
        with torch.no_grad():
            model(images)
    finally:
        for handle in handles:
            handle.remove()
    attentions = []
    for block, x in zip(model.net.blocks, inputs, strict=True):
        attn = block.attn
        batch, tokens, _ = x.shape
        qkv = attn.qkv(x).reshape(batch, tokens, 3, attn.num_heads, attn.head_dim)
        q, k, _ = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        q, k = attn.q_norm(q), attn.k_norm(k)
        attentions.append(((q * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1))
    return attentions


@pytest.mark.parametrize(
    ("reg_tokens", "size", "dynamic"),
    [(0, (64, 64), False), (2, (64, 64), False), (2, (48, 80), True)],
)
def test_attention_rollout_reads_the_class_row_over_the_patch_tokens(reg_tokens, size, dynamic):
    model = _vit(reg_tokens, **({"dynamic_img_size": True} if dynamic else {}))
    images = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([0, 3])
    prefix = model.net.num_prefix_tokens
    assert prefix == 1 + reg_tokens
    grid = (size[0] // 16, size[1] // 16)  # test_vit's 16 px patches: 4x4, or 3x5 at 48x80
    with torch.no_grad(), captured_attention(model.net) as captured:
        logits = model(images)
    recomputed = _recomputed_attention(model, images)
    assert len(captured) == len(recomputed) == len(model.net.blocks)
    for got, expected in zip(captured, recomputed, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits, model(images), rtol=1e-5, atol=1e-5)  # unfused = fused
    maps = explainers.create_explainer("attention_rollout").explain(model, images, targets)
    product = rollout([a.double() for a in recomputed])
    patch_row = product[:, 0, prefix:].reshape(2, *grid)
    torch.testing.assert_close(maps, upsample(patch_row, size))
    if reg_tokens:  # reading the patches from index 1 (ignoring register tokens) differs
        shifted = product[:, 0, 1 : 1 + grid[0] * grid[1]].reshape(2, *grid)
        assert not torch.allclose(maps, upsample(shifted, size), atol=1e-6)


def test_gradient_rollout_uses_the_target_logit_gradient_of_every_block():
    model = _vit(reg_tokens=2)
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    targets = torch.tensor([0, 3])
    maps = explainers.create_explainer("gradient_rollout").explain(model, images, targets)
    x = images.clone().requires_grad_(True)
    with captured_attention(model.net) as attentions:
        logits = model(x)
    gradients = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), attentions)
    relevance = gradient_rollout([a.detach().double() for a in attentions], gradients)
    expected = relevance[:, 0, model.net.num_prefix_tokens :].reshape(2, 4, 4).float()
    torch.testing.assert_close(maps, upsample(expected, (64, 64)))
    other = explainers.create_explainer("gradient_rollout").explain(model, images, targets.flip(0))
    assert not torch.allclose(maps, other), "the map must depend on the explained class"
    # frozen weights: the gradients still reach every block through the input
    for p in model.net.parameters():
        p.requires_grad_(False)
    frozen = explainers.create_explainer("gradient_rollout").explain(model, images, targets)
    torch.testing.assert_close(frozen, maps)


@pytest.mark.parametrize("name", ["attention_rollout", "gradient_rollout"])
def test_fused_attention_flags_are_restored_also_after_an_error(name):
    model = TINY_MODELS["timm_vit"]().model
    modules = [block.attn for block in model.net.blocks]
    modules[0].fused_attn, modules[1].fused_attn = True, False  # each module's own flag comes back
    images, targets = torch.randn(2, 3, 64, 64), torch.tensor([1, 2])
    explainer = explainers.create_explainer(name)
    maps = explainer.explain(model, images, targets)
    assert maps.shape == (2, 64, 64) and torch.isfinite(maps).all()
    assert [m.fused_attn for m in modules] == [True, False]

    def fail(*_):
        raise RuntimeError("boom")

    handle = model.net.blocks[1].register_forward_hook(fail)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            explainer.explain(model, images, targets)
    finally:
        handle.remove()
    assert [m.fused_attn for m in modules] == [True, False]
    assert not any(m.attn_drop._forward_pre_hooks for m in modules), "capture hooks must go"


@pytest.mark.parametrize("name", ["attention_rollout", "gradient_rollout"])
@pytest.mark.parametrize("tiny_name", ["timm_resnet", "timm_swin"])
def test_rollout_refuses_cnns_and_swin_with_a_reason(name, tiny_name):
    model = TINY_MODELS[tiny_name]().model
    explainer = explainers.create_explainer(name)
    reason = explainer.supports(model)
    assert reason and ("Swin" in reason if tiny_name == "timm_swin" else "ViT" in reason)
    with pytest.raises(FeatureLayerError):
        explainer.explain(model, torch.randn(1, *model.input_size), torch.tensor([0]))


def test_rollout_refuses_a_vit_that_does_not_classify_from_its_class_token():
    model = _vit(global_pool="avg")
    reason = explainers.create_explainer("attention_rollout").supports(model)
    assert reason and "class token" in reason
