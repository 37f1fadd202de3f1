"""The project's DeepLift and DeepSHAP: the hand-computed case, equal to captum's where captum's
rules are exact (every element-wise non-linearity, no max-pooling), summation-to-delta exact where
captum's is not (overlapping max-pools, rule modules in a row), the eps fallback, the refusals."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import explainers
from benchmark.models import Classifier
from tests.models import TINY_MODELS, hand_deeplift_mlp

pytest.importorskip("captum")

SHAPE = (3, 16, 16)
BACKGROUND = torch.randn(8, *SHAPE, generator=torch.Generator().manual_seed(7))
IMAGES = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(9))
TARGETS = torch.tensor([2, 0, 4])


def _net(activation: type[nn.Module], pool: nn.Module) -> Classifier:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), activation(), pool)
    net.extend([nn.Conv2d(8, 8, 3, padding=1), activation(), nn.AdaptiveAvgPool2d(1)])
    net.extend([nn.Flatten(), nn.Linear(8, 5)])
    return Classifier.from_module(net, (0.5,) * 3, (0.5,) * 3, SHAPE)


def _explain(name: str, model, images=IMAGES, targets=TARGETS, **params):
    plugin = explainers.create_explainer(name, **params)
    if "shap" in name:
        plugin.prepare(model, BACKGROUND.to(images.dtype))
    return plugin, plugin.explain(model, images, targets)


def _logit_change(model, plugin, images=IMAGES, targets=TARGETS) -> torch.Tensor:
    """f(x) - the mean reference logit, per image: what the contributions must add up to."""
    references = getattr(plugin, "_background", torch.zeros(1, *images.shape[1:]))
    with torch.no_grad():
        return (model(images) - model(references).mean(0)).gather(1, targets[:, None])[:, 0]


def test_deeplift_gives_the_hand_computed_rescale_contributions():
    maps = explainers.create_explainer("deeplift").explain(
        hand_deeplift_mlp(), torch.tensor([[[[1.0, 2.0]]]]), torch.tensor([0])
    )
    torch.testing.assert_close(maps, torch.tensor([[[2.5, -0.5]]]))


@pytest.mark.parametrize("ours", ["deeplift", "deeplift_shap"])
@pytest.mark.parametrize(
    "activation", [nn.ReLU, nn.ELU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Softplus]
)
def test_equals_captum_on_every_element_wise_rule_without_max_pooling(ours, activation):
    # in float64: in float32, (y - y') / (z - z') loses digits where z is close to z' (both do)
    model = _net(activation, nn.AvgPool2d(2))
    model.net.double()
    images = IMAGES.double()
    _, maps = _explain(ours, model, images)
    _, reference = _explain(f"captum_{ours}", model, images)
    assert reference.abs().max() > 0
    torch.testing.assert_close(maps, reference, rtol=1e-5, atol=1e-9)


def _separated(pool: nn.Module) -> Classifier:
    """conv-ReLU-conv-pool-...: no two rule modules in a row."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1), pool)
    net.extend([nn.Flatten(), nn.LazyLinear(5)])
    net(torch.zeros(1, *SHAPE))
    return Classifier.from_module(net, (0.5,) * 3, (0.5,) * 3, SHAPE)


def _in_a_row() -> Classifier:
    """conv-ReLU-Tanh-...: two element-wise rule modules in a row, no pooling."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Tanh())
    net.extend([nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 5)])
    return Classifier.from_module(net, (0.5,) * 3, (0.5,) * 3, SHAPE)


CAPTUM_FAULTS = {
    # ReLU then a 2x2 max-pool: rule modules in a row (captum's chained hooks)
    "relu-maxpool": lambda: _net(nn.ReLU, nn.MaxPool2d(2)),
    # ReLU then a 3x3 / stride 2 max-pool (ResNet's stem): both faults
    "relu-maxpool-3x3-stride-2": lambda: _net(nn.ReLU, nn.MaxPool2d(3, stride=2, padding=1)),
    # a conv between: the overlapping windows alone (captum's max_unpool2d keeps one)
    "overlapping-maxpool": lambda: _separated(nn.MaxPool2d(3, stride=2, padding=1)),
    "relu-tanh": _in_a_row,
}


@pytest.mark.parametrize("ours", ["deeplift", "deeplift_shap"])
@pytest.mark.parametrize("case", CAPTUM_FAULTS)
def test_contributions_add_up_exactly_where_captums_do_not(ours, case):
    model = CAPTUM_FAULTS[case]()
    plugin, maps = _explain(ours, model)
    change = _logit_change(model, plugin)
    torch.testing.assert_close(maps.sum(dim=(1, 2)), change, rtol=1e-4, atol=1e-6)
    if ours == "deeplift_shap":  # captum's faults show against non-zero references
        _, theirs = _explain(f"captum_{ours}", model)
        error = (theirs.sum(dim=(1, 2)) - change).abs().max()
        assert error > 100 * (maps.sum(dim=(1, 2)) - change).abs().max() and error > 1e-4


def test_exact_on_the_tiny_timm_resnet_and_vgg():
    for name in ("timm_resnet", "timm_vgg"):
        model = TINY_MODELS[name]().model
        images = torch.randn(2, *model.input_size, generator=torch.Generator().manual_seed(3))
        targets = torch.tensor([1, 3])
        plugin = explainers.create_explainer("deeplift_shap", background_size=3)
        assert plugin.supports(model) is None
        plugin.prepare(model, torch.randn(5, *model.input_size))
        maps = plugin.explain(model, images, targets)
        change = _logit_change(model, plugin, images, targets)
        torch.testing.assert_close(maps.sum(dim=(1, 2)), change, rtol=1e-4, atol=1e-6)


def test_pixels_equal_to_the_reference_take_the_plain_derivative():
    # the left half of each image is the zero baseline: there z = z' in the first layers, where
    # the rule falls back to the local derivative; the sums still add up and stay finite
    model = _net(nn.Tanh, nn.MaxPool2d(2))
    images = IMAGES.clone()
    images[..., :8] = 0
    plugin, maps = _explain("deeplift", model, images)
    assert torch.isfinite(maps).all()
    torch.testing.assert_close(maps[..., :8], torch.zeros_like(maps[..., :8]))
    change = _logit_change(model, plugin, images)
    torch.testing.assert_close(maps.sum(dim=(1, 2)), change, rtol=1e-4, atol=1e-6)
    _, baseline = _explain("deeplift", model, torch.zeros_like(IMAGES))
    assert (baseline == 0).all(), "the reference itself has no contributions"


def test_rows_per_pass_is_a_setting_that_never_changes_the_map():
    model = _net(nn.ReLU, nn.MaxPool2d(3, stride=2, padding=1))
    _, one = _explain("deeplift_shap", model, rows=1)
    _, many = _explain("deeplift_shap", model, rows=64)
    torch.testing.assert_close(one, many, rtol=1e-5, atol=1e-7)
    assert "rows" not in explainers.create_explainer("deeplift_shap").params()


def test_the_network_is_left_as_it_was():
    model = _net(nn.ReLU, nn.MaxPool2d(2))
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    plugin, _ = _explain("deeplift", model)
    pools = [m for m in (model.net, plugin._copy[1].net) for m in m.modules()]
    assert not any(getattr(m, "return_indices", False) for m in pools)
    assert not any(m._forward_hooks for m in pools)
    for key, value in model.net.state_dict().items():
        assert torch.equal(value, before[key])


@pytest.mark.parametrize("name", ["deeplift", "deeplift_shap"])
def test_refuses_what_it_has_no_rule_for_and_reused_modules(name):
    plugin = explainers.create_explainer(name)
    assert "DeepLift has no rule for" in plugin.supports(TINY_MODELS["timm_vit"]().model)
    relu = nn.ReLU()
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), relu, nn.Conv2d(4, 4, 3, padding=1), relu)
    net.extend([nn.Flatten(), nn.Linear(4 * 6 * 6, 3)])
    reused = Classifier.from_module(net, (0.5,), (0.5,), (1, 6, 6))
    assert "reuses" in plugin.supports(reused)
    softmax = Classifier.from_module(
        nn.Sequential(nn.Flatten(), nn.Linear(36, 3), nn.Softmax(dim=1)), (0.5,), (0.5,), (1, 6, 6)
    )
    assert "no rule for Softmax" in plugin.supports(softmax)
    with pytest.raises(ValueError, match="no rule for Softmax"):
        plugin.explain(softmax, torch.zeros(1, 1, 6, 6), torch.tensor([0]))
