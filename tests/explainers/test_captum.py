"""captum adapter: closed forms on the linear model, completeness of the path methods, the noise
scale, seeding, and the declared refusals of the hook-based methods."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import explainers
from benchmark.models import Classifier
from tests.models import (
    TINY_MODELS,
    hand_deeplift_mlp,
    linear_classifier,
    pixel_weights,
    small_cnn,
)

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


# -- agreement with captum's own calls, for every captum plugin ------------------------------------

BACKGROUND = torch.randn(6, 3, 24, 24, generator=torch.Generator().manual_seed(7))


def _each_image(attribute, images, targets, seed):
    """captum's call image by image under the adapter's per-image seed (randomised methods)."""
    from explainers._perturbation import seeded_globals

    parts = []
    for i, image_seed in enumerate(explainers.image_seeds(images, seed)):
        with seeded_globals(image_seed, images.device):
            parts.append(attribute(images[i : i + 1], targets[i : i + 1], image_seed))
    return torch.cat(parts)


def _background(plugin):
    g = torch.Generator().manual_seed(plugin.seed)
    return BACKGROUND[
        torch.randperm(len(BACKGROUND), generator=g)[: plugin.background_size].sort().values
    ]


def _superpixel_mask(model, image, image_seed, plugin):
    from explainers._segmentation import superpixels

    pixels = model.denormalize(image)[0].permute(1, 2, 0).numpy()
    labels = superpixels(pixels, plugin.segmentation, image_seed % 2**32, plugin.n_segments)
    return torch.from_numpy(labels)[None, None]


def _reference(name, plugin, model, images, targets):
    """captum's own call for plugin ``name`` on the bare network: attributions [B,C,H,W]."""
    import captum.attr as ca
    from captum.attr._utils.lrp_rules import EpsilonRule

    net = model.net
    if name == "captum_saliency":
        return ca.Saliency(net).attribute(images, target=targets, abs=True)
    if name == "captum_input_x_gradient":
        return ca.InputXGradient(net).attribute(images, target=targets)
    if name == "captum_integrated_gradients":
        return ca.IntegratedGradients(net).attribute(
            images, baselines=0.0, target=targets, n_steps=plugin.n_steps, method=plugin.method
        )
    if name in ("captum_smoothgrad", "captum_vargrad"):
        return _each_image(
            lambda x, t, _: ca.NoiseTunnel(ca.Saliency(net)).attribute(
                x,
                nt_type=name.removeprefix("captum_"),
                nt_samples=plugin.nt_samples,
                stdevs=plugin.noise_level * 2.0,  # std 0.5: the [0, 1] pixel range is 2 wide
                target=t,
                abs=name == "captum_smoothgrad",
            ),
            images,
            targets,
            plugin.seed,
        )
    if name == "captum_gradient_shap":
        return _each_image(
            lambda x, t, _: ca.GradientShap(net).attribute(
                x, baselines=_background(plugin), n_samples=plugin.n_samples, target=t
            ),
            images,
            targets,
            plugin.seed,
        )
    if name == "captum_guided_backprop":
        return ca.GuidedBackprop(net).attribute(images, target=targets)
    if name == "captum_deconvolution":
        return ca.Deconvolution(net).attribute(images, target=targets)
    if name == "captum_guided_gradcam":
        return ca.GuidedGradCam(net, net[4]).attribute(
            images, target=targets, interpolate_mode="bilinear"
        )
    if name == "captum_deeplift":
        return ca.DeepLift(net).attribute(images, baselines=0.0, target=targets)
    if name == "captum_deeplift_shap":
        return torch.cat(
            [
                ca.DeepLiftShap(net).attribute(x[None], baselines=_background(plugin), target=t)
                for x, t in zip(images, targets[:, None], strict=True)
            ]
        )
    if name == "captum_lrp":
        flatten = net[6]
        flatten.rule = EpsilonRule()  # as the plugin does: captum has no rule for nn.Flatten
        return ca.LRP(net).attribute(images, target=targets)
    if name == "captum_occlusion":
        return ca.Occlusion(net).attribute(
            images,
            sliding_window_shapes=(3, plugin.window, plugin.window),
            strides=(3, plugin.stride, plugin.stride),
            baselines=0.0,
            target=targets,
        )
    if name == "captum_feature_ablation":
        cells = torch.arange(24) // plugin.patch
        mask = cells[:, None] * cells.max().add(1) + cells[None, :]
        return ca.FeatureAblation(net).attribute(
            images, baselines=0.0, target=targets, feature_mask=mask[None, None]
        )
    if name in ("captum_kernel_shap", "captum_lime"):
        if name == "captum_kernel_shap":
            method = ca.KernelShap(net)
        else:
            from captum._utils.models.linear_model import SkLearnLasso
            from captum.attr._core.lime import get_exp_kernel_similarity_function

            method = ca.Lime(
                net,
                interpretable_model=SkLearnLasso(alpha=plugin.alpha),
                similarity_func=get_exp_kernel_similarity_function("cosine", plugin.kernel_width),
            )
        return _each_image(
            lambda x, t, s: method.attribute(
                x,
                baselines=0.0,
                target=t,
                feature_mask=_superpixel_mask(model, x, s, plugin),
                n_samples=plugin.n_samples,
            ),
            images,
            targets,
            plugin.seed,
        )
    raise AssertionError(f"no reference call for {name}: add captum's own call here")


@pytest.mark.parametrize("name", explainers.list_explainers("captum_*"))
def test_each_plugin_equals_captums_own_call_summed_over_channels(name):
    # conv, ReLU, max-pool, conv, ReLU (feature layer "4"), GAP, flatten, linear: every captum
    # method applies, and nothing is in place, so captum can run on the bare network
    model = TINY_MODELS["hooked_sequential"]().model
    images = torch.randn(2, 3, 24, 24, generator=torch.Generator().manual_seed(8))
    targets = torch.tensor([1, 3])
    cls = explainers.registry.get(name)
    # captum's Lasso (alpha 0.01) zeroes every superpixel of this tiny net's small logit changes
    params = {**cls.fast_params, **({"alpha": 1e-4} if name == "captum_lime" else {})}
    plugin = explainers.create_explainer(name, **params)
    plugin.prepare(model, BACKGROUND)
    maps = plugin.explain(model, images, targets)
    with torch.enable_grad():
        expected = _reference(name, plugin, model, images.clone(), targets).sum(1)
    assert maps.abs().max() > 0, f"{name}: an all-zero map proves nothing"
    torch.testing.assert_close(maps, expected.detach())


# -- closed forms of the newer plugins -------------------------------------------------------------


def test_deeplift_on_a_small_relu_network_gives_the_hand_computed_rescale_contributions():
    model = hand_deeplift_mlp()
    images = torch.tensor([[[[1.0, 2.0]]]])
    maps = explainers.create_explainer("captum_deeplift").explain(model, images, torch.tensor([0]))
    torch.testing.assert_close(maps, torch.tensor([[[2.5, -0.5]]]))
    # the gradient x input (0, 1) * (2, 1) ... differs: DeepLift is not the local gradient
    gxi = explainers.create_explainer("captum_input_x_gradient").explain(
        model, images, torch.tensor([0])
    )
    assert not torch.allclose(gxi, maps)


def test_kernel_shap_on_a_linear_model_gives_the_exact_shapley_value_of_each_superpixel():
    from explainers._segmentation import superpixels

    model, images, targets, weights = _linear()
    plugin = explainers.create_explainer("captum_kernel_shap", n_samples=300)
    maps = plugin.explain(model, images, targets)
    contributions = (weights * images).sum(1)  # w . (x - baseline), baseline 0, per pixel
    for i, seed in enumerate(explainers.image_seeds(images, plugin.seed)):
        pixels = model.denormalize(images[i : i + 1])[0].permute(1, 2, 0).numpy()
        labels = torch.from_numpy(superpixels(pixels, "quickshift", seed % 2**32))
        assert labels.max() > 0, "the test needs more than one superpixel"
        per_segment = torch.zeros(int(labels.max()) + 1).index_add_(
            0, labels.flatten(), contributions[i].flatten()
        )
        expected = 3 * per_segment[labels]  # each superpixel's value, summed over 3 channels
        torch.testing.assert_close(maps[i], expected, rtol=1e-3, atol=1e-4)


def test_lrp_on_a_linear_model_is_the_exact_contribution_through_reshapes():
    # epsilon rule on a linear layer: R_i = x_i w_i z / (z + eps) ~ w_i x_i; flatten and identity
    # pass relevance through
    model, images, targets, weights = _linear()
    model.net.append(nn.Identity())
    maps = explainers.create_explainer("captum_lrp").explain(model, images, targets)
    torch.testing.assert_close(maps, (weights * images).sum(1), rtol=1e-4, atol=1e-5)


def test_deeplift_shap_adds_up_to_the_logit_change_from_the_mean_baseline():
    # no max-pooling: captum's max-pool rule is not complete against non-zero baselines (0.03 off
    # on hooked_sequential's logit changes of 0.002)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2))
    net.extend([nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1)])
    net.extend([nn.Flatten(), nn.Linear(8, 5)])
    model = Classifier.from_module(net, (0.5,) * 3, (0.5,) * 3, (3, 24, 24))
    images = torch.randn(2, 3, 24, 24, generator=torch.Generator().manual_seed(9))
    targets = torch.tensor([2, 0])
    plugin = explainers.create_explainer("captum_deeplift_shap", background_size=4)
    plugin.prepare(model, BACKGROUND)
    maps = plugin.explain(model, images, targets)
    with torch.no_grad():
        baseline = model(_background(plugin)).mean(0)
        delta = (model(images) - baseline).gather(1, targets[:, None])[:, 0]
    torch.testing.assert_close(maps.sum(dim=(1, 2)), delta, rtol=1e-3, atol=1e-4)


def test_guided_gradcam_is_guided_backprop_times_the_projects_grad_cam():
    for build in (TINY_MODELS["hooked_sequential"], TINY_MODELS["timm_resnet"]):
        tiny = build()
        images = torch.randn(2, *tiny.input_shape, generator=torch.Generator().manual_seed(10))
        targets = torch.tensor([0, 4])
        guided = explainers.create_explainer("captum_guided_backprop")
        cam = explainers.create_explainer("grad_cam").explain(tiny.model, images, targets)
        expected = guided.explain(tiny.model, images, targets) * cam
        maps = explainers.create_explainer("captum_guided_gradcam").explain(
            tiny.model, images, targets
        )
        torch.testing.assert_close(maps, expected, rtol=1e-4, atol=1e-7)


def test_superpixel_methods_batch_size_is_a_setting_that_never_changes_the_map():
    model = TINY_MODELS["hooked_sequential"]().model
    images = torch.randn(1, 3, 24, 24, generator=torch.Generator().manual_seed(11))
    targets = torch.tensor([1])
    for name in ("captum_kernel_shap", "captum_lime"):
        one, many = (
            explainers.create_explainer(name, n_samples=30, perturbations_per_eval=size).explain(
                model, images, targets
            )
            for size in (1, 30)
        )
        torch.testing.assert_close(one, many)
        assert "perturbations_per_eval" not in explainers.create_explainer(name).params()


def test_lrp_and_guided_gradcam_refuse_what_they_cannot_propagate_naming_the_layer():
    lrp = explainers.create_explainer("captum_lrp")
    vit = TINY_MODELS["timm_vit"]().model
    assert "no rule for LayerNorm" in lrp.supports(vit)
    assert "blocks.0.norm1" in lrp.supports(vit)
    assert "residual addition" in lrp.supports(TINY_MODELS["timm_resnet"]().model)
    gelu = nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.GELU(), nn.Linear(4, 2))
    assert "GELU (layer '2'" in lrp.supports(
        Classifier.from_module(gelu, (0.5,), (0.5,), (1, 2, 2))
    )
    relu = nn.ReLU()
    reused = nn.Sequential(nn.Flatten(), nn.Linear(4, 4), relu, nn.Linear(4, 4), relu)
    reused.append(nn.Linear(4, 2))
    assert "reuses 2" in lrp.supports(Classifier.from_module(reused, (0.5,), (0.5,), (1, 2, 2)))
    assert lrp.supports(TINY_MODELS["timm_vgg"]().model) is None
    with pytest.raises(ValueError, match="no rule for LayerNorm"):
        lrp.explain(vit, torch.zeros(1, 3, 64, 64), torch.tensor([0]))

    guided_gradcam = explainers.create_explainer("captum_guided_gradcam")
    assert "nn.ReLU" in guided_gradcam.supports(small_cnn())
    no_feature_layer = Classifier.from_module(reused, (0.5,), (0.5,), (1, 2, 2))
    assert "no known feature layer" in guided_gradcam.supports(no_feature_layer)
