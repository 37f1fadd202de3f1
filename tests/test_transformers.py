"""Transformers through the model adapter: ``forward_with_features`` hands every method an NCHW
patch-grid map in the autograd graph, tested once per layout (ViT tokens, Swin NHWC)."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F

import explainers
from benchmark.models import Classifier, load_model
from explainers import FeatureLayerError, upsample
from tests.models import TINY_MODELS


def _images(model, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *model.input_size, generator=g)


def _grad_cam_over(features, logits, targets):
    """Grad-CAM over a map whose dims 2, 3 are taken as the spatial axes (right or wrong)."""
    (grads,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), features)
    return F.relu((grads.mean(dim=(2, 3), keepdim=True) * features).sum(dim=1)).detach()


def _vit_tokens(model, images):
    """The tokens entering the last block's attention, as the ViT computed them."""
    captured = []
    handle = model.net.blocks[-1].norm1.register_forward_hook(lambda m, i, o: captured.append(o))
    try:
        logits = model(images)
    finally:
        handle.remove()
    return logits, captured[0]


@pytest.mark.parametrize("reg_tokens", [0, 2])
def test_vit_feature_map_is_the_patch_token_grid_after_the_prefix_tokens(reg_tokens):
    torch.manual_seed(0)
    net = timm.create_model("test_vit", num_classes=5, img_size=64, reg_tokens=reg_tokens)
    model = Classifier(net, (0.5,) * 3, (0.5,) * 3, (3, 64, 64), "vit")
    images = _images(model)
    logits, features = model.forward_with_features(images)
    assert features.shape == (2, 64, 4, 4)  # [B, K = embed dim, h, w = 64 px / 16 px patches]
    expected_logits, tokens = _vit_tokens(model, images)
    torch.testing.assert_close(logits, expected_logits)
    prefix = net.num_prefix_tokens
    assert prefix == 1 + reg_tokens
    # position (i, j) of the map is patch token prefix + 4 i + j
    torch.testing.assert_close(features[:, :, 1, 2], tokens[:, prefix + 4 * 1 + 2])
    (grads,) = torch.autograd.grad(logits[:, 0].sum(), features)
    assert grads.abs().sum() > 0, "the map must be in the graph of the class-token logits"


def test_vit_grad_cam_differs_from_a_map_over_the_wrong_axes_and_cam_refuses():
    model = TINY_MODELS["timm_vit"]().model
    images, targets = _images(model), torch.tensor([0, 3])
    maps = explainers.create_explainer("grad_cam").explain(model, images, targets)
    assert maps.shape == (2, 64, 64)
    with torch.enable_grad():
        logits, tokens = _vit_tokens_requiring_grad(model, images)
        (grads,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), tokens)

    def grid(t, wrong):  # patch tokens [B,16,64] -> [B,64,4,4]
        t = t[:, 1:].detach()
        return t.reshape(2, 64, 4, 4) if wrong else t.transpose(1, 2).reshape(2, 64, 4, 4)

    def grad_cam(wrong):
        weights = grid(grads, wrong).mean(dim=(2, 3), keepdim=True)
        return upsample(F.relu((weights * grid(tokens, wrong)).sum(dim=1)), (64, 64))

    torch.testing.assert_close(maps, grad_cam(wrong=False))  # the right axes: the same map
    assert not torch.allclose(maps, grad_cam(wrong=True), atol=1e-3)
    reason = explainers.create_explainer("cam").supports(model)
    assert reason is not None and "grad_cam" in reason
    with pytest.raises(FeatureLayerError, match="grad_cam"):
        explainers.create_explainer("cam").explain(model, images, targets)


def _vit_tokens_requiring_grad(model, images):
    """Logits and the last block's norm1 tokens, the logits differentiable w.r.t. the tokens."""
    captured = []

    def hook(_m, _i, out):
        out = out if out.requires_grad else out.detach().requires_grad_(True)
        captured.append(out)
        return out

    handle = model.net.blocks[-1].norm1.register_forward_hook(hook)
    try:
        logits = model(images)
    finally:
        handle.remove()
    return logits, captured[0]


def test_swin_feature_map_is_forward_features_permuted_to_nchw():
    model = TINY_MODELS["timm_swin"]().model
    images, targets = _images(model), torch.tensor([1, 4])
    logits, features = model.forward_with_features(images)
    nhwc = model.net.forward_features(images)
    assert nhwc.shape == (2, 4, 4, 32) and features.shape == (2, 32, 4, 4)
    torch.testing.assert_close(features, nhwc.permute(0, 3, 1, 2))
    torch.testing.assert_close(logits, model(images))
    # grad_cam on the NCHW map differs from the same formula over the NHWC tensor's dims 2, 3
    maps = explainers.create_explainer("grad_cam").explain(model, images, targets)
    with torch.enable_grad():
        wrong = model.net.forward_features(images)
        wrong_map = _grad_cam_over(wrong, model.net.forward_head(wrong), targets)  # [B, H=4, C]
    wrong_map = upsample(wrong_map, (32, 32))
    assert not torch.allclose(maps, wrong_map, atol=1e-3)
    # Swin's head is GAP + linear: CAM applies (its identity is checked on every batch)
    cam = explainers.create_explainer("cam")
    assert cam.supports(model) is None
    assert cam.explain(model, images, targets).shape == (2, 32, 32)


def test_deit_tiny_grad_cam_and_cam_no_longer_crash():
    torch.manual_seed(0)
    model = load_model("deit_tiny_patch16_224")
    images, targets = _images(model, n=1), torch.tensor([7])
    _, features = model.forward_with_features(images)
    assert features.shape == (1, 192, 14, 14)
    maps = explainers.create_explainer("grad_cam").explain(model, images, targets)
    assert maps.shape == (1, 224, 224) and torch.isfinite(maps).all() and maps.max() > 0
    assert "grad_cam" in explainers.create_explainer("cam").supports(model)


@pytest.mark.slow
def test_swin_tiny_feature_map_is_nchw():
    torch.manual_seed(0)
    model = load_model("swin_tiny_patch4_window7_224")
    _, features = model.forward_with_features(_images(model, n=1))
    assert features.shape == (1, 768, 7, 7)
    assert explainers.create_explainer("cam").supports(model) is None
