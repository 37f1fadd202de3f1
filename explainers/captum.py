"""captum's image attributions (Kokhlikyan et al., 2020, https://arxiv.org/abs/2009.07896), one plugin per method.

Every plugin is ``captum_<method>``: captum computes attributions [B,C,H,W] for the given targets
and the map is their sum over channels (signed unless the plugin says abs). Each plugin's own
citation is the first line of its description. What the adapter takes care of:

* Batching: integrated gradients through ``internal_batch_size``, the noise tunnels through
  ``nt_samples_batch_size``, occlusion and feature ablation through ``perturbations_per_eval``:
  all run settings (they never change the numbers).
* Randomised methods (SmoothGrad, VarGrad, GradientSHAP) draw from torch's generator forked and
  seeded per image from ``seed`` and the image's content, so a map is reproducible and does not
  depend on the batch; the global random state is left as it was.
* Noise: SmoothGrad / VarGrad take their noise std as a fraction (``noise_level``) of the input
  range (the [0, 1] pixel range in the model's normalised space, 1 / std), as in the SmoothGrad
  paper, never captum's absolute default of 1.0.
* Baselines: zero, which is the data mean in normalised space (integrated gradients, DeepLift,
  occlusion, feature ablation); GradientSHAP draws its baselines from the images given to
  ``prepare`` (a seeded sample), else from the zero baseline.
* Hook-based methods (GuidedBackprop, Deconvolution, DeepLift) run on a deep copy of the network
  with every ``inplace`` flag off (captum's module hooks break on in-place ReLUs); the copy is
  cached per network. They refuse, through ``supports()``, models they would silently get wrong:
  GuidedBackprop / Deconvolution without ``nn.ReLU`` modules (they never see ``F.relu`` or GELU);
  DeepLift on models with a non-linearity captum has no rule for (GELU, SiLU, LayerNorm,
  attention: it would use the plain gradient) or a non-linear module used twice in one forward.
"""

from __future__ import annotations

import contextlib
import copy
import math
import re
import warnings
import weakref
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from explainers import Explainer, image_seeds, register_explainer, setting
from explainers._perturbation import numpy_seed

FAMILY_PREFIX = "captum_"
NOMINAL_SIZE = 224  # image side at which occlusion and feature ablation state their cost()

# -- shared machinery ------------------------------------------------------------------------------


class _Logits(nn.Module):
    """The classifier as a module captum can call and hook: images -> logits."""

    def __init__(self, model) -> None:
        super().__init__()
        self.net = model.net  # registered, so captum's module hooks see the layers
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)


def _safe_copy(model):
    """A deep copy of ``model`` (a Classifier) with every in-place flag off."""
    clone = copy.copy(model)
    clone.net = copy.deepcopy(model.net)
    for module in clone.net.modules():
        if getattr(module, "inplace", False) is True:
            module.inplace = False
    clone.net.eval()
    return clone


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device):
    """torch's and numpy's global generators seeded for the block, then restored (captum draws
    noise with torch.normal and GradientSHAP's interpolation points with np.random)."""
    state = np.random.get_state()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            np.random.seed(numpy_seed(seed))
            yield
    finally:
        np.random.set_state(state)


@contextlib.contextmanager
def _quiet():
    """captum's notices on every call (hooks set on activations, inputs made to require grad)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(hooks|require gradients|requires_grad).*")
        yield


def _per_channel_sum(attributions: Tensor) -> Tensor:
    return attributions.sum(dim=1).detach().float()


def _input_range(model) -> float:
    """Width of the valid input range in normalised space: [0, 1] pixels -> 1 / std (mean over
    channels)."""
    return float(sum(1.0 / s for s in model.std) / len(model.std))


class _Captum(Explainer):
    """Shared body: build the captum method on a module, attribute, sum over channels."""

    randomised: ClassVar[bool] = False
    needs_copy: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self._copy: tuple | None = None  # (original net, safe copy)

    def _module(self, model) -> nn.Module:
        if not self.needs_copy:
            return _Logits(model)
        if self._copy is None or self._copy[0] is not model.net:
            self._copy = (model.net, _Logits(_safe_copy(model)))
        return self._copy[1]

    def _attribute(self, module, model, images, targets) -> Tensor:
        raise NotImplementedError

    def explain(self, model, images, targets):
        reason = self.supports(model)
        if reason is not None:
            raise ValueError(reason)
        module = self._module(model)
        x = images.detach()
        with torch.enable_grad(), _quiet():
            if not self.randomised:
                attributions = self._attribute(module, model, x, targets)
            else:  # one image at a time, each with its own seed: batch-independent
                parts = []
                for i, seed in enumerate(image_seeds(x, self.seed)):
                    with _seeded(seed, x.device):
                        parts.append(
                            self._attribute(module, model, x[i : i + 1], targets[i : i + 1])
                        )
                attributions = torch.cat(parts)
        for p in module.parameters():
            p.grad = None
        return self._reduce(attributions)

    def _reduce(self, attributions: Tensor) -> Tensor:
        return _per_channel_sum(attributions)


def _relu_reason(model, method: str) -> str | None:
    if any(isinstance(m, nn.ReLU) for m in model.net.modules()):
        return None
    return (
        f"{method} overrides the backward pass of nn.ReLU modules only, and model "
        f"{model.name!r} has none (its non-linearities are functional or other activations, "
        "e.g. GELU): the map would be the plain gradient"
    )


# Module types DeepLift has no rule for (it would back-propagate their plain gradient).
_NO_DEEPLIFT_RULE = (
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.PReLU,
    nn.SELU,
    nn.CELU,
    nn.GLU,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.MultiheadAttention,
    nn.AdaptiveMaxPool2d,
)
_NO_DEEPLIFT_NAME = re.compile(r"gelu|silu|swish|mish|hard|layernorm|attention", re.IGNORECASE)


def _deeplift_reason(model) -> str | None:
    from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR

    for name, module in model.net.named_modules():
        if isinstance(module, _NO_DEEPLIFT_RULE) or _NO_DEEPLIFT_NAME.search(type(module).__name__):
            return (
                f"DeepLift has no rule for {type(module).__name__} (layer {name!r} of model "
                f"{model.name!r}) and would back-propagate its plain gradient"
            )
    if model.input_size is None:
        return None
    calls: dict[str, int] = {}
    handles = [
        m.register_forward_hook(lambda mod, i, o, n=n: calls.__setitem__(n, calls.get(n, 0) + 1))
        for n, m in model.net.named_modules()
        if type(m) in SUPPORTED_NON_LINEAR
    ]
    try:
        with torch.no_grad():
            model(torch.zeros(1, *model.input_size, device=model.device))
    finally:
        for h in handles:
            h.remove()
    reused = sorted(n for n, count in calls.items() if count > 1)
    if reused:
        return (
            f"DeepLift needs each non-linear module used once per forward; model {model.name!r} "
            f"reuses {', '.join(reused[:3])}"
        )
    return None


# -- gradients -------------------------------------------------------------------------------------


@register_explainer("captum_saliency", tags=("gradient", "captum"), requires=("captum",))
@dataclass
class CaptumSaliency(_Captum):
    """Saliency (Simonyan et al., ICLR-W 2014, https://arxiv.org/abs/1312.6034) via captum.

    Absolute input gradient of the target logit, summed over channels (abs). One forward, one
    backward.
    """

    version = "1"

    def cost(self) -> int:
        return 2

    def _attribute(self, module, model, images, targets):
        from captum.attr import Saliency

        return Saliency(module).attribute(images, target=targets, abs=True)


@register_explainer("captum_input_x_gradient", tags=("gradient", "captum"), requires=("captum",))
@dataclass
class CaptumInputXGradient(_Captum):
    """Input x gradient (Shrikumar et al., 2016, https://arxiv.org/abs/1605.01713) via captum.

    Normalised input times the target logit's input gradient, summed over channels (signed).
    """

    version = "1"

    def cost(self) -> int:
        return 2

    def _attribute(self, module, model, images, targets):
        from captum.attr import InputXGradient

        return InputXGradient(module).attribute(images, target=targets)


@register_explainer(
    "captum_integrated_gradients", tags=("gradient", "path", "captum"), requires=("captum",)
)
@dataclass
class CaptumIntegratedGradients(_Captum):
    """Integrated gradients (Sundararajan et al., ICML 2017, https://arxiv.org/abs/1703.01365) via captum.

    From the zero baseline (the data mean), ``n_steps`` Gauss-Legendre points, attributions
    summed over channels (signed; they add up to logit(x) - logit(baseline)). ``n_steps``
    forward + backward passes per image, in batches of ``internal_batch_size`` inputs.
    """

    version = "1"
    fast_params = {"n_steps": 4}

    n_steps: int = 50
    method: str = "gausslegendre"
    internal_batch_size: int = setting(64)

    def cost(self) -> int:
        return 2 * self.n_steps

    def _attribute(self, module, model, images, targets):
        from captum.attr import IntegratedGradients

        return IntegratedGradients(module).attribute(
            images,
            baselines=0.0,
            target=targets,
            n_steps=self.n_steps,
            method=self.method,
            internal_batch_size=self.internal_batch_size,
        )


@dataclass
class _NoiseTunnel(_Captum):
    randomised = True
    nt_type: ClassVar[str]
    fast_params = {"nt_samples": 4}

    nt_samples: int = 50
    noise_level: float = 0.15  # noise std as a fraction of the input range (SmoothGrad: 10-20%)
    seed: int = 0
    nt_samples_batch_size: int = setting(25)

    def cost(self) -> int:
        return 2 * self.nt_samples

    def _attribute(self, module, model, images, targets):
        from captum.attr import NoiseTunnel, Saliency

        return NoiseTunnel(Saliency(module)).attribute(
            images,
            nt_type=self.nt_type,
            nt_samples=self.nt_samples,
            nt_samples_batch_size=self.nt_samples_batch_size,
            stdevs=self.noise_level * _input_range(model),
            target=targets,
            abs=self.nt_type == "smoothgrad",
        )


@register_explainer(
    "captum_smoothgrad", tags=("gradient", "sampling", "captum"), requires=("captum",)
)
@dataclass
class CaptumSmoothGrad(_NoiseTunnel):
    """SmoothGrad (Smilkov et al., 2017, https://arxiv.org/abs/1706.03825) via captum's NoiseTunnel.

    Mean over ``nt_samples`` noisy copies (Gaussian, std = ``noise_level`` x the input range) of
    the absolute input gradient, summed over channels (abs). A forward and a backward per sample;
    noise seeded per image.
    """

    version = "1"
    nt_type = "smoothgrad"


@register_explainer("captum_vargrad", tags=("gradient", "sampling", "captum"), requires=("captum",))
@dataclass
class CaptumVarGrad(_NoiseTunnel):
    """VarGrad (Adebayo et al., ICLR-W 2018, https://arxiv.org/abs/1810.03307) via captum's NoiseTunnel.

    Variance over ``nt_samples`` noisy copies (std = ``noise_level`` x the input range) of the
    signed input gradient, summed over channels (non-negative). A forward and a backward per
    sample; noise seeded per image.
    """

    version = "1"
    nt_type = "vargrad"


@register_explainer(
    "captum_gradient_shap", tags=("gradient", "shap", "sampling", "captum"), requires=("captum",)
)
@dataclass
class CaptumGradientShap(_Captum):
    """GradientSHAP (Lundberg & Lee, NeurIPS 2017, https://arxiv.org/abs/1705.07874) via captum.

    Expected gradients x (input - baseline) at random points between the image and baselines
    drawn from a seeded sample of ``background_size`` images given to ``prepare`` (else the zero
    baseline), with Gaussian noise of std ``noise_level`` x the input range; ``n_samples``
    forward + backward passes per image, summed over channels (signed).
    """

    version = "1"
    randomised = True
    fast_params = {"n_samples": 4, "background_size": 4}

    n_samples: int = 50
    background_size: int = 50
    noise_level: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._background: Tensor | None = None

    def prepare(self, model, background: Tensor) -> None:
        g = torch.Generator().manual_seed(self.seed)
        keep = torch.randperm(len(background), generator=g)[: self.background_size].sort().values
        self._background = background[keep].detach().clone()

    def cost(self) -> int:
        return 2 * self.n_samples

    def _attribute(self, module, model, images, targets):
        from captum.attr import GradientShap

        background = self._background
        if background is None:
            background = torch.zeros(1, *images.shape[1:])
        return GradientShap(module).attribute(
            images,
            baselines=background.to(images.device, images.dtype),
            n_samples=self.n_samples,
            stdevs=self.noise_level * _input_range(model),
            target=targets,
        )


# -- modified backward passes --------------------------------------------------------------------


@register_explainer(
    "captum_guided_backprop", tags=("gradient", "modified-backprop", "captum"), requires=("captum",)
)
@dataclass
class CaptumGuidedBackprop(_Captum):
    """Guided backpropagation (Springenberg et al., ICLR-W 2015, https://arxiv.org/abs/1412.6806) via captum.

    Gradient with every nn.ReLU passing back only positive gradients, on a copy of the network
    without in-place ReLUs; summed over channels (signed). Refuses models without nn.ReLU
    modules. One forward, one backward.
    """

    version = "1"
    needs_copy = True

    def cost(self) -> int:
        return 2

    def supports(self, model) -> str | None:
        return _relu_reason(model, "GuidedBackprop")

    def _attribute(self, module, model, images, targets):
        from captum.attr import GuidedBackprop

        return GuidedBackprop(module).attribute(images, target=targets)


@register_explainer(
    "captum_deconvolution", tags=("gradient", "modified-backprop", "captum"), requires=("captum",)
)
@dataclass
class CaptumDeconvolution(_Captum):
    """Deconvolution (Zeiler & Fergus, ECCV 2014, https://arxiv.org/abs/1311.2901) via captum.

    Back-propagation with every nn.ReLU applied to the gradient instead of gating by the input,
    on a copy of the network without in-place ReLUs; summed over channels (signed). Refuses
    models without nn.ReLU modules. One forward, one backward.
    """

    version = "1"
    needs_copy = True

    def cost(self) -> int:
        return 2

    def supports(self, model) -> str | None:
        return _relu_reason(model, "Deconvolution")

    def _attribute(self, module, model, images, targets):
        from captum.attr import Deconvolution

        return Deconvolution(module).attribute(images, target=targets)


@register_explainer(
    "captum_deeplift", tags=("gradient", "modified-backprop", "captum"), requires=("captum",)
)
@dataclass
class CaptumDeepLift(_Captum):
    """DeepLIFT rescale rule (Shrikumar et al., ICML 2017, https://arxiv.org/abs/1704.02685) via captum.

    Contributions relative to the zero baseline (the data mean), on a copy of the network without
    in-place ReLUs, summed over channels (signed; they add up to logit(x) - logit(baseline)).
    Refuses models with a non-linearity captum has no rule for (GELU, SiLU, LayerNorm,
    attention) or a non-linear module used twice. One forward of image and baseline, one backward.
    """

    version = "1"
    needs_copy = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self._verdicts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # net -> reason

    def cost(self) -> int:
        return 3

    def supports(self, model) -> str | None:
        if model.net not in self._verdicts:
            self._verdicts[model.net] = _deeplift_reason(model)
        return self._verdicts[model.net]

    def _attribute(self, module, model, images, targets):
        from captum.attr import DeepLift

        return DeepLift(module).attribute(images, baselines=0.0, target=targets)


# -- perturbations ---------------------------------------------------------------------------------


@register_explainer("captum_occlusion", tags=("perturbation", "captum"), requires=("captum",))
@dataclass
class CaptumOcclusion(_Captum):
    """Occlusion (Zeiler & Fergus, ECCV 2014, https://arxiv.org/abs/1311.2901) via captum.

    Drop of the target logit when a ``window`` x ``window`` patch (all channels) is set to the
    zero baseline (the data mean), slid with ``stride``; each pixel gets the mean drop of the
    windows covering it, summed over channels (signed). One forward per window position
    (729 at 224 px with the defaults), in batches of ``perturbations_per_eval``.
    """

    version = "1"
    fast_params = {"window": 8, "stride": 8}

    window: int = 16
    stride: int = 8
    perturbations_per_eval: int = setting(64)

    def cost(self) -> int:
        positions = max(0, (NOMINAL_SIZE - self.window) // self.stride) + 1
        return 1 + positions**2

    def _attribute(self, module, model, images, targets):
        from captum.attr import Occlusion

        window = min(self.window, *images.shape[-2:])
        return Occlusion(module).attribute(
            images,
            sliding_window_shapes=(images.shape[1], window, window),
            strides=(images.shape[1], self.stride, self.stride),
            baselines=0.0,
            target=targets,
            perturbations_per_eval=self.perturbations_per_eval,
        )


@register_explainer(
    "captum_feature_ablation", tags=("perturbation", "captum"), requires=("captum",)
)
@dataclass
class CaptumFeatureAblation(_Captum):
    """Feature ablation on a grid of patches (captum's FeatureAblation; Kokhlikyan et al., 2020, https://arxiv.org/abs/2009.07896).

    Each ``patch`` x ``patch`` cell (all channels) is set to the zero baseline (the data mean)
    in turn; every pixel of the cell gets the drop of the target logit, summed over channels
    (signed, so C x the drop). One forward per cell (196 at 224 px with the defaults) plus one,
    in batches of ``perturbations_per_eval``.
    """

    version = "1"
    fast_params = {"patch": 8}

    patch: int = 16
    perturbations_per_eval: int = setting(64)

    def cost(self) -> int:
        return 1 + math.ceil(NOMINAL_SIZE / self.patch) ** 2

    def _attribute(self, module, model, images, targets):
        from captum.attr import FeatureAblation

        height, width = images.shape[-2:]
        rows = torch.arange(height, device=images.device) // self.patch
        cols = torch.arange(width, device=images.device) // self.patch
        mask = rows[:, None] * math.ceil(width / self.patch) + cols[None, :]  # cell per pixel
        return FeatureAblation(module).attribute(
            images,
            baselines=0.0,
            target=targets,
            feature_mask=mask[None, None],  # [1,1,H,W]: one cell for all channels and images
            perturbations_per_eval=self.perturbations_per_eval,
        )
