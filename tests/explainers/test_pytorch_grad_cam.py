"""pytorch-grad-cam adapter: every library CAM is registered or excluded with a reason, and each
plugin's map equals the library's output up to the library's per-image min-max scaling."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

import explainers
from explainers import pytorch_grad_cam as pgc
from tests.models import TINY_MODELS, gap_linear

pytorch_grad_cam = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.base_cam import BaseCAM  # noqa: E402
from pytorch_grad_cam.utils.model_targets import (  # noqa: E402
    ClassifierOutputTarget,
    FinerWeightedTarget,
)

NAMES = [n for n in explainers.list_explainers("pgc_*")]
PARAMS = {"pgc_sess": {"num_scales": 2}}  # two scales: 1 + 4 patches, fused


def test_every_exported_cam_is_registered_or_excluded_with_a_reason():
    classes = [
        c
        for _, c in inspect.getmembers(pytorch_grad_cam, inspect.isclass)
        if issubclass(c, BaseCAM) and c is not BaseCAM
    ]
    assert len(classes) >= 15
    for c in classes:
        name = "pgc_" + c.__name__.lower()
        assert (name in NAMES) != (c.__name__ in pgc.EXCLUDED), c.__name__
        if c.__name__ in pgc.EXCLUDED:
            assert len(pgc.EXCLUDED[c.__name__]) > 20
    assert {"pgc_gradcam", "pgc_gradcamplusplus", "pgc_scorecam", "pgc_ablationcam"} <= set(NAMES)
    assert {"pgc_finercam", "pgc_sess"} <= set(NAMES)
    for name in NAMES:
        assert explainers.registry.entry(name).module == "explainers.pytorch_grad_cam"


def _min_max(maps: np.ndarray) -> np.ndarray:
    """The library's scale_cam_image, per image."""
    maps = maps - maps.min(axis=(1, 2), keepdims=True)
    return maps / (1e-7 + maps.max(axis=(1, 2), keepdims=True))


def _library(name, model, images, targets):
    """The library's own output for the plugin ``name`` on the same target layer."""
    plugin = explainers.create_explainer(name, **PARAMS.get(name, {}))
    wrapper = pgc._CamModel(model, use_tap=plugin.uses_feature_layer)
    layers = [wrapper.tap] if plugin.uses_feature_layer else []
    if name == "pgc_sess":
        with pytorch_grad_cam.SESS(wrapper, layers, **PARAMS[name]) as cam:
            return cam(images, [ClassifierOutputTarget(int(t)) for t in targets]), targets
    if name == "pgc_finercam":
        # the library's own target choice: the predicted class and its most similar classes
        with pytorch_grad_cam.FinerCAM(wrapper, layers) as cam:
            return cam(images, targets=None), None
    with plugin.library_class(wrapper, layers) as cam:
        return cam(images, [ClassifierOutputTarget(int(t)) for t in targets]), targets


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("model_name", ["full_resolution", "hooked_sequential"])
def test_plugin_equals_the_library_up_to_its_min_max_scaling(name, model_name):
    model = gap_linear(in_chans=3, k=6, classes=5) if model_name == "full_resolution" else None
    model = model or TINY_MODELS[model_name]().model
    g = torch.Generator().manual_seed(1)
    images = torch.randn(3, 3, 24, 24, generator=g)
    expected, targets = _library(name, model, images, torch.tensor([0, 3, 1]))
    if targets is None:
        targets = model(images).argmax(1)
    plugin = explainers.create_explainer(name, **PARAMS.get(name, {}))
    ours = plugin.explain(model, images, targets).numpy()
    assert ours.shape == expected.shape
    assert (ours >= 0).all()
    spread = ours.max(axis=(1, 2)) - ours.min(axis=(1, 2))
    keep = spread > 1e-6 * max(1.0, float(np.abs(ours).max()))  # flat maps scale to 0 there
    assert keep.any()
    # (cv2.resize and torch bilinear differ by ~2e-4 near the borders)
    np.testing.assert_allclose(_min_max(ours)[keep], expected[keep], atol=1e-3)
    assert not np.allclose(ours[keep], expected[keep], atol=1e-3), "a raw map, not scaled"


def test_relu_false_keeps_the_sign_and_hooks_and_grads_are_released():
    model = TINY_MODELS["hooked_sequential"]().model
    images = torch.randn(2, 3, 24, 24, generator=torch.Generator().manual_seed(2))
    targets = torch.tensor([1, 2])
    signed = explainers.create_explainer("pgc_hirescam", relu=False).explain(model, images, targets)
    relu = explainers.create_explainer("pgc_hirescam").explain(model, images, targets)
    assert (signed < 0).any()
    # ReLU before bilinear upsampling, as the library does: equal where the map is positive
    assert torch.all(relu >= signed - 1e-6)
    for module in model.net.modules():
        assert not module._forward_hooks and not module._backward_hooks
    assert all(p.grad is None for p in model.net.parameters())


@pytest.mark.parametrize("name", ["pgc_gradcam", "pgc_fullgrad", "pgc_shapleycam"])
def test_weights_stay_out_of_the_librarys_backward_and_come_back_as_they_were(name):
    model = TINY_MODELS["hooked_sequential"]().model
    params = list(model.net.parameters())
    params[0].requires_grad_(False)  # a user's frozen layer stays frozen
    images = torch.randn(2, 3, 24, 24, generator=torch.Generator().manual_seed(4))
    seen = []
    hook = params[-1].register_hook(lambda grad: seen.append(grad.shape))  # the head's bias
    explainers.create_explainer(name).explain(model, images, torch.tensor([1, 2]))
    hook.remove()
    if name != "pgc_shapleycam":  # its second derivatives need the head's weights in the graph
        assert not seen, "a weight gradient was computed: the library's backward went past the map"
    assert [p.requires_grad for p in params] == [False] + [True] * (len(params) - 1)
    assert all(p.grad is None for p in params)
    with pytest.raises(IndexError):  # a target outside the classes, raised inside the call
        explainers.create_explainer(name).explain(model, images, torch.tensor([1, 99]))
    assert [p.requires_grad for p in params] == [False] + [True] * (len(params) - 1)
    assert all(p.grad is None for p in params)


def test_finercam_compares_each_image_with_its_own_targets_similar_classes():
    model = TINY_MODELS["hooked_sequential"]().model
    images = torch.randn(2, 3, 24, 24, generator=torch.Generator().manual_seed(3))
    plugin = explainers.create_explainer("pgc_finercam", comparisons=2)
    targets = plugin._library_targets(model, images, torch.tensor([4, 0]))
    logits = model(images)
    for i, (t, target) in enumerate(zip([4, 0], targets, strict=True)):
        assert isinstance(target, FinerWeightedTarget) and target.main_category == t
        distance = (logits[i] - logits[i, t]).abs()
        distance[t] = float("inf")
        assert target.comparison_categories == distance.argsort()[:2].tolist()


def test_costs_state_the_channel_sweep():
    assert explainers.create_explainer("pgc_gradcam").cost() == 2
    assert explainers.create_explainer("pgc_scorecam").cost() == 1 + pgc.NOMINAL_CHANNELS
    assert explainers.create_explainer("pgc_ablationcam").cost() == 2 + pgc.NOMINAL_CHANNELS
    fast = explainers.create_explainer("pgc_ablationcam", ratio_channels_to_ablate=0.25)
    assert fast.cost() == 2 + pgc.NOMINAL_CHANNELS // 2
    # the batch size is a run setting: not part of the recorded parameters
    assert "batch_size" not in explainers.create_explainer("pgc_scorecam").params()
