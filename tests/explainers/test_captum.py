"""captum adapter: closed forms on the linear model, completeness of the path methods, the noise
scale, seeding, and the declared refusals of the hook-based methods."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import explainers
from benchmark.models import Classifier
from tests.models import TINY_MODELS, linear_classifier, pixel_weights, small_cnn

pytest.importorskip("captum")

SHAPE = (3, 8, 8)


def _linear():
    model = linear_classifier(SHAPE, classes=4, seed=0)
    images = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([0, 2, 3])
    return model, images, targets, pixel_weights(model)[targets]


@pytest.mark.parametrize(
    "name",
    ["captum_input_x_gradient", "captum_integrated_gradients", "captum_deeplift"],
)
def test_on_a_linear_model_the_path_methods_give_the_exact_contributions(name):
    model, images, targets, weights = _linear()
    maps = explainers.create_explainer(name).explain(model, images, targets)
    torch.testing.assert_close(maps, (weights * images).sum(1), rtol=1e-4, atol=1e-5)


def test_saliency_and_smoothgrad_are_the_absolute_weights_and_vargrad_zero_on_a_linear_model():
    model, images, targets, weights = _linear()
    expected = weights.abs().sum(1)
    for name in ("captum_saliency", "captum_smoothgrad"):
        maps = explainers.create_explainer(name, nt_samples=3) if "smooth" in name else None
        maps = (maps or explainers.create_explainer(name)).explain(model, images, targets)
        torch.testing.assert_close(maps, expected)
    vargrad = explainers.create_explainer("captum_vargrad", nt_samples=3)
    assert vargrad.explain(model, images, targets).abs().max() < 1e-6 * float(expected.max()) ** 2


def test_occlusion_and_feature_ablation_give_each_cell_its_logit_drop_on_a_linear_model():
    model, images, targets, weights = _linear()
    contributions = (weights * images).sum(1)  # [B,8,8]
    cells = contributions.reshape(3, 2, 4, 2, 4).sum(dim=(2, 4))  # 4x4 cells
    expected = 3 * cells.repeat_interleave(4, 1).repeat_interleave(4, 2)  # x C channels
    for name, params in (
        ("captum_occlusion", {"window": 4, "stride": 4}),
        ("captum_feature_ablation", {"patch": 4}),
    ):
        maps = explainers.create_explainer(name, **params).explain(model, images, targets)
        torch.testing.assert_close(maps, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["captum_integrated_gradients", "captum_deeplift"])
def test_attributions_add_up_to_the_logit_change_from_the_baseline(name):
    model = TINY_MODELS["hooked_sequential"]().model
    images = torch.randn(2, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    targets = torch.tensor([1, 4])
    maps = explainers.create_explainer(name).explain(model, images, targets)
    with torch.no_grad():
        delta = model(images) - model(torch.zeros_like(images))
    delta = delta.gather(1, targets[:, None])[:, 0]
    torch.testing.assert_close(maps.sum(dim=(1, 2)), delta, rtol=2e-2, atol=1e-4)


def test_noise_std_is_a_fraction_of_the_input_range(monkeypatch):
    from captum.attr import NoiseTunnel

    seen = []
    original = NoiseTunnel.attribute

    def spy(self, *args, **kwargs):
        seen.append(kwargs["stdevs"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(NoiseTunnel, "attribute", spy)
    model, images, targets, _ = _linear()  # std 0.5: the [0, 1] pixel range is 2 wide
    explainers.create_explainer("captum_smoothgrad", nt_samples=2, noise_level=0.1).explain(
        model, images[:1], targets[:1]
    )
    assert seen == [pytest.approx(0.2)]


def test_randomised_methods_are_seeded_per_image_and_leave_the_global_state_alone():
    model = small_cnn()
    images = torch.randn(2, 3, 20, 20, generator=torch.Generator().manual_seed(2))
    targets = torch.tensor([0, 1])
    for name in ("captum_smoothgrad", "captum_gradient_shap"):
        torch.manual_seed(5)
        np.random.seed(5)
        torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()[1].copy()
        first = explainers.create_explainer(name, seed=1).explain(model, images, targets)
        assert torch.equal(torch.get_rng_state(), torch_state)
        assert np.array_equal(np.random.get_state()[1], numpy_state)
        other = explainers.create_explainer(name, seed=2).explain(model, images, targets)
        assert not torch.allclose(first, other), f"{name}: the seed must matter"


def test_hook_methods_refuse_models_without_relu_modules_and_leave_the_model_unchanged():
    tanh = small_cnn()  # Tanh activations only
    for name in ("captum_guided_backprop", "captum_deconvolution"):
        plugin = explainers.create_explainer(name)
        assert "nn.ReLU" in plugin.supports(tanh)
        with pytest.raises(ValueError, match="nn.ReLU"):
            plugin.explain(tanh, torch.zeros(1, 3, 20, 20), torch.tensor([0]))
    relu_net = TINY_MODELS["cnn_gap"]().model  # in-place ReLUs
    before = {k: v.clone() for k, v in relu_net.net.state_dict().items()}
    images = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    for name in ("captum_guided_backprop", "captum_deconvolution", "captum_deeplift"):
        plugin = explainers.create_explainer(name)
        assert plugin.supports(relu_net) is None
        plugin.explain(relu_net, images, torch.tensor([1, 2]))
    assert all(m.inplace for m in relu_net.net.modules() if isinstance(m, nn.ReLU))
    assert all(torch.equal(v, before[k]) for k, v in relu_net.net.state_dict().items())
    for module in relu_net.net.modules():
        assert not module._forward_hooks and not module._backward_hooks


def test_guided_backprop_differs_from_the_plain_gradient():
    model = TINY_MODELS["hooked_sequential"]().model
    images = torch.randn(2, 3, 24, 24, generator=torch.Generator().manual_seed(4))
    targets = torch.tensor([0, 1])
    guided = explainers.create_explainer("captum_guided_backprop").explain(model, images, targets)
    x = images.clone().requires_grad_(True)
    (grads,) = torch.autograd.grad(model(x).gather(1, targets[:, None]).sum(), x)
    assert not torch.allclose(guided, grads.sum(1), atol=1e-6)


def test_deeplift_refuses_gelu_layernorm_and_reused_modules():
    vit = TINY_MODELS["timm_vit"]().model
    assert "DeepLift has no rule" in explainers.create_explainer("captum_deeplift").supports(vit)
    relu = nn.ReLU()
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), relu, nn.Conv2d(4, 4, 3, padding=1), relu)
    net.append(nn.Flatten())
    net.append(nn.Linear(4 * 6 * 6, 3))
    model = Classifier.from_module(net, (0.5,), (0.5,), (1, 6, 6))
    reason = explainers.create_explainer("captum_deeplift").supports(model)
    assert reason and "reuses" in reason


def test_costs_and_run_settings():
    assert explainers.create_explainer("captum_integrated_gradients").cost() == 100
    assert explainers.create_explainer("captum_occlusion").cost() == 1 + 27**2
    assert explainers.create_explainer("captum_feature_ablation").cost() == 1 + 14**2
    params = explainers.create_explainer("captum_integrated_gradients").params()
    assert "internal_batch_size" not in params and params["n_steps"] == 50
