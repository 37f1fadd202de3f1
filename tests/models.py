"""The test kit of small models, most with a closed form an explainer or metric can be checked
against (in the spirit of captum's ``tests/helpers/basic_models.py``).

Every builder taking ``seed`` calls ``torch.manual_seed(seed)`` and then builds, so the weights
and the global random state after the call are those of seeding by hand and building in place.
``mean`` / ``std`` are one value for every channel; images passed to the models are normalised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from benchmark.models import Classifier, load_model

Shape = tuple[int, int, int]  # (C, H, W)


def _normalised(channels: int, mean: float, std: float) -> tuple[tuple[float, ...], ...]:
    return (mean,) * channels, (std,) * channels


# -- analytic models -----------------------------------------------------------------------------


def linear_classifier(
    shape: Shape, classes: int, seed: int = 0, mean: float = 0.5, std: float = 0.5
) -> Classifier:
    """logits = W x.flatten() + b: ``net = Sequential(Flatten, Linear)``; see ``pixel_weights``."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(shape[0] * shape[1] * shape[2], classes))
    return Classifier.from_module(net, *_normalised(shape[0], mean, std), shape)


def pixel_weights(model: Classifier) -> torch.Tensor:
    """A ``linear_classifier``'s W as [classes, C, H, W]: logit_k = sum(W[k] * x) + b[k]."""
    linear = model.net[1]
    return linear.weight.detach().view(linear.out_features, *model.input_size)


class LinearToy(nn.Module):
    """Two classes: logit_0 = sum(weight * x), logit_1 = 0, so p_0 = sigmoid(sum(weight * x))."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.clone(), requires_grad=False)
        self.num_classes = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logit = (x * self.weight).flatten(1).sum(1)
        return torch.stack([logit, torch.zeros_like(logit)], 1)


def linear_toy(weight: torch.Tensor, mean: float = 0.5, std: float = 0.5) -> Classifier:
    """``LinearToy`` of a [C, H, W] weight: p_0 = sigmoid(sum(weight * x)), p_1 = 1 - p_0."""
    channels = weight.shape[0]
    return Classifier(LinearToy(weight), *_normalised(channels, mean, std), tuple(weight.shape))


def gap_linear(in_chans: int = 2, k: int = 4, classes: int = 3, seed: int = 0) -> Classifier:
    """conv "0" (full size) -> GAP -> linear "3": logit_c = mean(CAM_c) + b_c, CAM_c = w_c . A."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(in_chans, k, 3, padding=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(k, classes),
    )
    return Classifier.from_module(
        net, *_normalised(in_chans, 0.0, 1.0), feature_layer="0", classifier_layer="3"
    )


def mlp_head_cnn(in_chans: int = 1, k: int = 4, classes: int = 3, seed: int = 0) -> Classifier:
    """conv3x3 ("0") -> GAP -> linear -> ReLU -> linear ("5"): a head that is not GAP + linear."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(in_chans, k, 3, padding=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(k, k),
        nn.ReLU(),
        nn.Linear(k, classes),
    )
    return Classifier.from_module(
        net, *_normalised(in_chans, 0.0, 1.0), feature_layer="0", classifier_layer="5"
    )


def identity_classifier(channels: int = 1, mean: float = 0.5, std: float = 0.5) -> Classifier:
    """logits = x.flatten(): for explainers that only need the model's normalisation."""
    return Classifier.from_module(nn.Flatten(), *_normalised(channels, mean, std))


class RegionContrast(nn.Module):
    """logit_0 = scale * mean over the region of x ** 2 (normalised input), logit_1 = 0.

    Every masking (blur, superpixel mean, a baseline at the data mean) lowers the contrast, so the
    region's pixels carry positive attribution and the others none.
    """

    def __init__(self, rows: slice, cols: slice, scale: float = 4.0) -> None:
        super().__init__()
        self.rows, self.cols, self.scale = rows, cols, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logit = self.scale * x[:, :, self.rows, self.cols].pow(2).mean(dim=(1, 2, 3))
        return torch.stack([logit, torch.zeros_like(logit)], dim=1)


def region_contrast(shape: Shape, rows: slice, cols: slice) -> Classifier:
    """``RegionContrast``: the target (class 0) depends on the pixels of rows x cols only."""
    return Classifier.from_module(
        RegionContrast(rows, cols), *_normalised(shape[0], 0.5, 0.5), shape
    )


# -- random nets ---------------------------------------------------------------------------------


def small_cnn(seed: int = 0) -> Classifier:
    """A random tanh conv net (5 classes, any input size); every pixel moves the probabilities."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.Tanh(),
        nn.AvgPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.Tanh(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, 5),
    )
    with torch.no_grad():
        net[-1].weight.mul_(20)  # spread the probabilities so changes are visible
    return Classifier(net, *_normalised(3, 0.5, 0.5), (3, 20, 20), "small_cnn")


@dataclass
class TinyModel:
    model: Classifier
    input_shape: Shape  # used in tests
    cam_able: bool  # head is global-average-pooling + linear


def _timm(factory: Callable[[], nn.Module], shape: Shape, cam_able: bool):
    def build() -> TinyModel:
        torch.manual_seed(0)
        model = Classifier(factory(), *_normalised(shape[0], 0.5, 0.5), shape, "tiny")
        return TinyModel(model, shape, cam_able)

    return build


def _resnet() -> nn.Module:
    import timm

    return timm.create_model("test_resnet", num_classes=5)


def _vgg() -> nn.Module:
    from timm.models.vgg import VGG

    return VGG(cfg=[8, "M", 16, "M"], num_classes=5, mlp_ratio=0.01)  # VGG's pre-logits MLP head


def _densenet() -> nn.Module:
    from timm.models.densenet import DenseNet

    return DenseNet(growth_rate=4, block_config=(2, 2), bn_size=2, num_classes=5)


def _vit() -> nn.Module:
    """timm's test_vit at 64 px, 2 of its 6 blocks (test time): a class-token head (not
    CAM-able), a 4x4 patch grid."""
    import timm

    return timm.create_model("test_vit", num_classes=5, img_size=64, depth=2)


def _swin() -> nn.Module:
    """A two-stage Swin at 32 px: NHWC ``forward_features`` (4x4 grid, 32 channels), GAP + linear."""
    from timm.models.swin_transformer import SwinTransformer

    return SwinTransformer(
        img_size=32,
        patch_size=4,
        window_size=4,
        embed_dim=16,
        depths=(1, 1),
        num_heads=(1, 1),
        num_classes=5,
    )


def relu_cnn(
    shape: Shape = (3, 24, 24), widths: tuple[int, int] = (8, 16), classes: int = 5, seed: int = 0
) -> Classifier:
    """A plain user module, conv-ReLU-maxpool-conv-ReLU-GAP-linear (feature layer "4", classifier
    "7", found by name through forward hooks): every captum method applies to it."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(shape[0], widths[0], 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(widths[0], widths[1], 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(widths[1], classes),
    )
    return Classifier.from_module(
        net, *_normalised(shape[0], 0.5, 0.5), shape, feature_layer="4", classifier_layer="7"
    )


def hand_deeplift_mlp() -> Classifier:
    """Flatten-linear-ReLU-linear on a 1x1x2 image, whose DeepLift contributions for x = (1, 2),
    class 0, against the zero baseline are worked out by hand: (2.5, -0.5).

    Hidden z = W1 x + b1 = (-0.5, 3), at the baseline (0.5, -1); a = ReLU(z) = (0, 3) vs (0.5, 0):
    multipliers dA/dZ = (-0.5/-1, 3/4) = (0.5, 0.75); the contribution of x_i is
    sum_j v_j m_j W1[j, i] x_i with v = (2, 1): x1: (2*0.5*1 + 1*0.75*2) * 1 = 2.5,
    x2: (2*0.5*-1 + 1*0.75*1) * 2 = -0.5 (sum 2 = the logit change)."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 1.0]]))
        net[1].bias.copy_(torch.tensor([0.5, -1.0]))
        net[3].weight.copy_(torch.tensor([[2.0, 1.0], [0.0, 0.0]]))
        net[3].bias.zero_()
    return Classifier.from_module(net, (0.0,), (1.0,), (1, 1, 2))


def _hooked() -> TinyModel:
    return TinyModel(relu_cnn(), (3, 24, 24), True)


def _cnn_gap() -> TinyModel:
    torch.manual_seed(0)
    return TinyModel(load_model("cnn_gap"), (1, 28, 28), True)


# One tiny network of each architecture family (5 classes each), built fresh by each call.
TINY_MODELS: dict[str, Callable[[], TinyModel]] = {
    "timm_resnet": _timm(_resnet, (3, 64, 64), True),
    "timm_vgg": _timm(_vgg, (3, 32, 32), False),
    "timm_densenet": _timm(_densenet, (3, 32, 32), True),
    "hooked_sequential": _hooked,
    "cnn_gap": _cnn_gap,
    "timm_vit": _timm(_vit, (3, 64, 64), False),
    "timm_swin": _timm(_swin, (3, 32, 32), True),
}


def benchmark_model(name: str, size: int = 224) -> Classifier:
    """A benchmark's network: ``resnet18`` / ``resnet50`` (timm, random weights, ``size`` px,
    channels_last) or a harness model by name (``cnn_gap``: random weights)."""
    torch.manual_seed(0)
    if name in ("resnet18", "resnet50"):
        import timm

        net = timm.create_model(name, pretrained=False)
        stats = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        return Classifier(net, *stats, (3, size, size), name, channels_last=True)
    return load_model(name)
