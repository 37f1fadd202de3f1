"""pytorch-grad-cam's CAM methods (Gildenblat and contributors, https://github.com/jacobgil/pytorch-grad-cam), one plugin per method.

Registered by introspection: every ``BaseCAM`` subclass that the installed ``pytorch_grad_cam``
package exports becomes ``pgc_<lower-cased class name>`` (``pgc_gradcam``, ``pgc_scorecam``, ...),
so a library upgrade that adds a method adds a plugin without an edit here, and the library's
methods sit next to the project's own (``grad_cam`` vs ``pgc_gradcam``) on a board. Each method's
citation is in its plugin's description. Without the package installed nothing is registered.

What the adapter changes, and why:

* Raw maps. The library ReLUs and min-max scales every map (``scale_cam_image`` in
  ``compute_cam_per_layer`` and again in ``aggregate_multi_layers``). The plugins take the
  method's own per-layer map (``get_cam_image``), apply the library's ReLU (``relu=False`` keeps
  the sign) and upsample it bilinearly with half-pixel centres (as ``cv2.resize`` does), without
  any scaling: the map is the library's output times a positive per-image factor plus an offset.
  FullGrad scales each bias-gradient term inside its own method (that is the paper's
  post-processing): its plugin skips only the final scaling of the sum.
* Target layer: the model adapter's feature map (``Classifier.forward_with_features``: a named
  feature layer, timm's ``forward_features`` output, a ViT's patch-token grid), exposed to the
  library's hooks as an identity module (``_Tap``) the network's forward passes through, so the
  perturbation methods (AblationCAM replaces the layer) work too. FullGrad uses every biased
  conv/batch-norm layer, as in the library, and needs no feature layer.
* Targets: one ``ClassifierOutputTarget`` per image (the given target, not the prediction).
* Hooks are released after every call, also on errors. The library's own ``__exit__`` would
  also swallow any IndexError (it prints and returns True), which would hide a wrong map, so the
  plugins release the hooks in a ``finally`` of their own. The library's progress bars are muted.
* Channel-sweeping methods (ScoreCAM: one forward per feature channel; AblationCAM: one per
  ablated channel) take their batch size as a run setting; their ``cost()`` is stated at
  ``NOMINAL_CHANNELS`` feature channels (512, a ResNet-18 / VGG last stage), since it depends on
  the model.

Not registered, with the reason (``EXCLUDED``; tested):

* ``RandomCAM``: channel weights drawn from numpy's global random state per batch, so neither
  deterministic nor batch-independent, and not an explanation (the project's ``random`` is the
  seeded baseline).
* ``EigenGradCAM``: the first principal component of grads x activations has an arbitrary sign
  (SVD), so an image's map flips between batches (measured on the tiny DenseNet): not
  batch-independent. ``SegEigenCAM``, the same projection with the paper's sign correction, is
  registered.
* ``EigenCAM``, ``KPCA_CAM``, ``FEM``: class-agnostic (no gradients, no target: the same map for
  every class), so not a map of the given target; KPCA_CAM's scikit-learn KernelPCA also switches
  to an unseeded randomised ARPACK solver above 200 feature positions.
* Any future subclass that overrides ``compute_cam_per_layer`` or ``aggregate_multi_layers``
  (other than FullGrad, handled above): it scales inside its own code, which the adapter cannot
  undo; it is reported in ``EXCLUDED`` instead of being registered with a min-max scaled map.
* The wrappers that are not ``BaseCAM`` subclasses: ``FinerCAM`` is registered as
  ``pgc_finercam`` (on raw Grad-CAM, comparison classes per image from the given target);
  ``RefineCAM`` multiplies per-layer CAMs of several layers (the adapter exposes one feature
  layer, and each factor is min-max scaled by the library, so no raw scale exists), not
  registered; ``SESS`` is registered as ``pgc_sess``: it fuses the library's min-max-scaled
  Grad-CAMs of sliding-window patches at ``num_scales`` scales (the scaling of each patch map is
  part of the method), weighted by the patches' target probabilities, and blurs the fused map;
  the plugin returns that fused map without SESS's final min-max scaling (122 patches, 366
  evaluations, per 224 px image at its defaults). ``GuidedBackpropReLUModel`` (one image at a time, replaces ReLUs) and
  ``DeepFeatureFactorization`` (concepts, not a map of a target) are not CAMs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import inspect
import sys
import types
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from explainers import Explainer, FeatureLayerError, register_explainer, setting, upsample

FAMILY_PREFIX = "pgc_"
NOMINAL_CHANNELS = 512  # feature channels at which the channel-sweeping methods state their cost

# Library class -> why it is not registered (filled in below for overriding subclasses).
EXCLUDED: dict[str, str] = {
    "RandomCAM": "random channel weights from numpy's global state, drawn per batch: neither "
    "deterministic nor batch-independent (use the seeded `random` baseline)",
    "EigenCAM": "class-agnostic (first principal component of the activations): not a map of "
    "the given target",
    "KPCA_CAM": "class-agnostic (kernel PCA of the activations), and scikit-learn's KernelPCA "
    "uses an unseeded ARPACK solver above 200 feature positions",
    "FEM": "class-agnostic (thresholded activation statistics): not a map of the given target",
    "EigenGradCAM": "the sign of its principal component is arbitrary (SVD): an image's map can "
    "flip between batches (measured: the tiny DenseNet's map alone is the negative of its map in "
    "a batch of three, so the ReLU'd maps disagree)",
}

# Citations and costs of the methods known today; a new library method gets a generic entry.
_CITATIONS = {
    "GradCAM": "Selvaraju et al., ICCV 2017, https://arxiv.org/abs/1610.02391",
    "GradCAMPlusPlus": "Chattopadhyay et al., WACV 2018, https://arxiv.org/abs/1710.11063",
    "XGradCAM": "Fu et al., BMVC 2020, https://arxiv.org/abs/2008.02312",
    "HiResCAM": "Draelos & Carin, 2020, https://arxiv.org/abs/2011.08891",
    "GradCAMElementWise": "the library's variant: ReLU of grads x activations, element-wise",
    "LayerCAM": "Jiang et al., IEEE TIP 2021, https://ieeexplore.ieee.org/document/9462463",
    "SegEigenCAM": "Chung & Ying, Applied Sciences 2025, https://doi.org/10.3390/app15137562",
    "ShapleyCAM": "Cai, 2025, https://arxiv.org/abs/2501.06261",
    "ScoreCAM": "Wang et al., CVPR-W 2020, https://arxiv.org/abs/1910.01279",
    "AblationCAM": "Desai & Ramaswamy, Ablation-CAM, WACV 2020",
    "FullGrad": "Srinivas & Fleuret, NeurIPS 2019, https://arxiv.org/abs/1905.00780",
    "FinerCAM": "Zhang et al., CVPR 2025, https://arxiv.org/abs/2501.11309",
    "SESS": "Tursun et al., ECCV 2022, https://arxiv.org/abs/2207.01769",
}


@dataclass(frozen=True)
class _Spec:
    """How one library class runs: extra fields (name -> dataclass field), cost, fast params."""

    fields: tuple[tuple[str, type, Any], ...] = ()
    fast_params: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ("gradient",)
    cost: Any = 2  # int, or a function of the plugin instance
    # second derivatives: timm's fused attention (scaled_dot_product_attention) has none on CPU,
    # so attention runs unfused for the call (the same function, computed step by step)
    double_backward: bool = False

    def cost_of(self, plugin) -> int:
        return int(self.cost(plugin) if callable(self.cost) else self.cost)


_SPECS = {
    # one forward (activations), then one forward per channel mask, in batches of batch_size
    "ScoreCAM": _Spec(
        fields=(("batch_size", int, setting(16)),),
        fast_params={"batch_size": 64},
        tags=("perturbation",),
        cost=1 + NOMINAL_CHANNELS,
    ),
    # two forwards (activations, original scores), then one per ablated channel; below 1.0 the
    # library ablates the ratio's highest- and lowest-scoring channels (2 x ratio x K)
    "AblationCAM": _Spec(
        fields=(
            ("ratio_channels_to_ablate", float, 1.0),
            ("batch_size", int, setting(32)),
        ),
        # the library calls its ratio selection experimental (default 1.0: every channel)
        fast_params={"ratio_channels_to_ablate": 0.25, "batch_size": 64},
        tags=("perturbation",),
        cost=lambda p: (
            2 + min(NOMINAL_CHANNELS, round(2 * p.ratio_channels_to_ablate * NOMINAL_CHANNELS))
        ),
    ),
    # forward, backward with graph, Hessian-vector product
    "ShapleyCAM": _Spec(cost=3, double_backward=True),
    "FullGrad": _Spec(tags=("gradient", "full-gradient")),
}


class _Tap(nn.Module):
    """Identity on the feature map: the library's target layer (hooks see the map here)."""

    def forward(self, features):
        return features


class _CamModel(nn.Module):
    """The classifier as the library sees it: logits from images, the feature map passing
    through ``tap`` (a module the library may hook or, for AblationCAM, replace)."""

    def __init__(self, model, use_tap: bool = True) -> None:
        super().__init__()
        self.tap = _Tap()
        self.net = model.net  # registered: the library reads the device and biases from it
        self.classifier = model
        self.use_tap = use_tap

    def forward(self, images):
        if self.use_tap:
            return self.classifier.forward_with_features(images, edit=self.tap)[0]
        return self.classifier(images)


def _raw_cam_per_layer(self, input_tensor, targets, eigen_smooth):
    """``BaseCAM.compute_cam_per_layer`` without its ReLU, resizing and min-max scaling."""
    activations = list(self.activations_and_grads.activations)
    grads = list(self.activations_and_grads.gradients)
    if self.detach:
        activations = [a.cpu().data.numpy() for a in activations]
        grads = [g.cpu().data.numpy() for g in grads]
    cams = []
    for i, layer in enumerate(self.target_layers):
        a = activations[i] if i < len(activations) else None
        g = grads[i] if i < len(grads) else None
        cams.append(
            np.asarray(self.get_cam_image(input_tensor, layer, targets, a, g, eigen_smooth))
        )
    return cams


def _first_layer(self, cams):
    return cams[0]  # one target layer: the map as the method computed it


def _summed(self, cams):
    return np.sum(cams, axis=1)  # FullGrad's aggregation without its final min-max scaling


def _raw_class(library_class: type) -> type:
    """A subclass of ``library_class`` whose ``__call__`` returns unscaled maps."""
    if library_class.__name__ == "FullGrad":
        namespace = {"aggregate_multi_layers": _summed}
    else:
        namespace = {
            "compute_cam_per_layer": _raw_cam_per_layer,
            "aggregate_multi_layers": _first_layer,
        }
    return type(f"Raw{library_class.__name__}", (library_class,), namespace)


@contextlib.contextmanager
def _quiet(library_class: type):
    """Mute the library's per-image tqdm bars (ScoreCAM, AblationCAM) for the call."""
    module = sys.modules.get(library_class.__module__)
    bars = getattr(module, "tqdm", None)
    if not isinstance(bars, types.ModuleType):
        yield
        return
    module.tqdm = types.SimpleNamespace(tqdm=lambda iterable, *a, **k: iterable)
    try:
        yield
    finally:
        module.tqdm = bars


@contextlib.contextmanager
def _unfused_attention(net: nn.Module, active: bool):
    """Switch timm's fused attention off (``fused_attn = False``) for the call, then restore it."""
    switched = [m for m in net.modules() if active and getattr(m, "fused_attn", False) is True]
    for module in switched:
        module.fused_attn = False
    try:
        yield
    finally:
        for module in switched:
            module.fused_attn = True


@contextlib.contextmanager
def _weights_untouched(module: nn.Module, freeze: bool):
    """The network's weights as they were after the call, without ``.grad``; with ``freeze``,
    out of autograd during it: the library's ``loss.backward()`` otherwise back-propagates into
    every weight, though a CAM needs gradients down to its feature map only (FullGrad: to the
    input, which the library makes a leaf). Not for second derivatives (ShapleyCAM): through a
    linear head the feature-map gradient is a function of the head's weights alone, and frozen
    weights leave it without a graph to differentiate."""
    learning = [p for p in module.parameters() if freeze and p.requires_grad]
    for p in learning:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in learning:
            p.requires_grad_(True)
        for p in module.parameters():
            p.grad = None


@contextlib.contextmanager
def _released(*cams):
    """Release the library's hooks however the call ends (never swallowing an exception)."""
    try:
        yield
    finally:
        for cam in cams:
            hooks = (
                getattr(cam, "activations_and_grads", None) or cam.base_cam.activations_and_grads
            )
            # dropped, not detach_()ed in place as the library's release() does: that fails on
            # views (Swin's permuted map, some gradients) for CAMs that keep the graph (ShapleyCAM)
            hooks.activations, hooks.gradients = [], []
            hooks.release()


def _feature_layer_reason(model) -> str | None:
    """Why ``model`` has no feature map for the library's target layer (None: it has one)."""
    if model.input_size is None:
        return None  # nothing to probe with: explain raises FeatureLayerError if need be
    probe = torch.randn(1, *model.input_size, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            model.forward_with_features(probe.to(model.device))
    except FeatureLayerError as e:
        return str(e)
    return None


class _PgcExplainer(Explainer):
    """Shared body of the pytorch-grad-cam plugins (subclasses are made by :func:`_plugin`)."""

    library_class: ClassVar[type]
    spec: ClassVar[_Spec]
    uses_feature_layer: ClassVar[bool] = True

    def cost(self) -> int:
        return self.spec.cost_of(self)

    def supports(self, model) -> str | None:
        if not self.uses_feature_layer:
            return None
        return _feature_layer_reason(model)

    def _make_cam(self, wrapper: nn.Module):
        raw = _raw_class(self.library_class)
        layers = [wrapper.tap] if self.uses_feature_layer else []
        kwargs = {}
        if "ablation_layer" in inspect.signature(self.library_class.__init__).parameters:
            from pytorch_grad_cam.ablation_layer import AblationLayer

            kwargs["ablation_layer"] = (
                AblationLayer()
            )  # the library's default is one shared instance
        for name, _type, _default in self.spec.fields:
            if name in inspect.signature(self.library_class.__init__).parameters:
                kwargs[name] = getattr(self, name)
        cam = raw(wrapper, layers, **kwargs)
        if "batch_size" in {f[0] for f in self.spec.fields}:
            cam.batch_size = self.batch_size  # ScoreCAM reads it as an attribute
        return cam

    def _library_targets(self, model, images, targets):
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        return [ClassifierOutputTarget(int(t)) for t in targets]

    def _run(self, cam, images, library_targets):
        return cam(images, library_targets)

    def explain(self, model, images, targets):
        wrapper = _CamModel(model, use_tap=self.uses_feature_layer)
        cam = self._make_cam(wrapper)
        # errstate: AblationCAM's channel selection divides by zero on dead channels
        with (
            _released(cam),
            _quiet(self.library_class),
            _unfused_attention(model.net, self.spec.double_backward),
            _weights_untouched(wrapper, freeze=not self.spec.double_backward),
            torch.enable_grad(),
            np.errstate(divide="ignore", invalid="ignore"),
        ):
            maps = self._run(cam, images, self._library_targets(model, images, targets))
        maps = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32)).to(images.device)
        if self.relu:
            maps = maps.clamp_min(0)  # the library's ReLU (its scaling is left out)
        return upsample(maps, images.shape[-2:]).detach()


class _FinerMixin:
    """FinerCAM: the target's score minus ``alpha`` times its most similar classes' scores."""

    def _library_targets(self, model, images, targets):
        from pytorch_grad_cam.utils.model_targets import FinerWeightedTarget

        with torch.no_grad():
            logits = model(images).float()
        main = logits.gather(1, targets[:, None])
        # the library's ordering: classes by |logit - target logit|, the target itself first
        order = (logits - main).abs().argsort(dim=1, stable=True)
        count = min(self.comparisons, logits.shape[1] - 1)
        result = []
        for i, t in enumerate(targets.tolist()):
            others = [c for c in order[i].tolist() if c != t][:count]
            result.append(FinerWeightedTarget(t, others, self.alpha))
        return result

    def _make_cam(self, wrapper):
        from pytorch_grad_cam import GradCAM

        # the base CAM alone: a FinerCAM object would release its hooks when collected
        return _raw_class(GradCAM)(wrapper, [wrapper.tap])

    def _run(self, base_cam, images, library_targets):
        from pytorch_grad_cam import FinerCAM

        finer = FinerCAM.__new__(FinerCAM)  # the library's forward, around our raw base CAM
        finer.base_cam = base_cam
        finer.compute_input_gradient = base_cam.compute_input_gradient
        finer.uses_gradients = base_cam.uses_gradients
        return FinerCAM.forward(finer, images, library_targets)


class _SessMixin:
    """SESS: Grad-CAMs of sliding-window patches of the image at several scales, fused."""

    def _make_cam(self, wrapper):
        from pytorch_grad_cam import GradCAM

        # patch CAMs min-max scaled by the library's GradCAM: that is SESS's fusion (weighted
        # average of normalised patch maps); only SESS's final scaling is left out (_run)
        return self.library_class(
            wrapper,
            [wrapper.tap],
            base_method=GradCAM,
            num_scales=self.num_scales,
            batch_size=self.batch_size,
        )

    def _run(self, sess, images, library_targets):
        # SESS.forward = scale_cam_image(forward_single_image per image): the unscaled part
        return np.stack(
            [
                sess.forward_single_image(images[i : i + 1], target)
                for i, target in enumerate(library_targets)
            ]
        )


def _sess_patches(num_scales: int, side: int = 224) -> int:
    """Patches SESS takes of a ``side`` x ``side`` image at its default window and step."""
    from pytorch_grad_cam.sess import sliding_window

    step = int(round(side * 2.0 / 7.0))
    scales = [side + step * i for i in range(num_scales)]
    return sum(len(sliding_window(s, s, side, side)) for s in scales)


def _library_version() -> str:
    try:
        return importlib.metadata.version("grad-cam")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _plugin(library_class: type, spec: _Spec, *, mixin: type | None = None) -> type:
    """Build and register the plugin dataclass for one library class."""
    name = FAMILY_PREFIX + library_class.__name__.lower()
    citation = _CITATIONS.get(library_class.__name__, "see the pytorch-grad-cam documentation")
    fields = [("relu", bool, True), *spec.fields]
    if mixin is _FinerMixin:
        fields += [("alpha", float, 1.0), ("comparisons", int, 3)]
    fields = [
        (n, t, d if isinstance(d, dataclasses.Field) else field(default=d)) for n, t, d in fields
    ]
    bases = (mixin, _PgcExplainer) if mixin else (_PgcExplainer,)
    cls = dataclasses.make_dataclass(f"Pgc{library_class.__name__}", fields, bases=bases)
    cls.__module__ = __name__
    cls.library_class = library_class
    cls.spec = spec
    cls.fast_params = dict(spec.fast_params)
    cls.uses_feature_layer = library_class.__name__ != "FullGrad"
    cls.version = f"1-grad-cam{_library_version()}"  # a library upgrade may change the numbers
    layer = "the model's feature map" if cls.uses_feature_layer else "every biased conv/BN layer"
    cls.__doc__ = (
        f"pytorch-grad-cam's {library_class.__name__} ({citation}) on {layer}, unscaled.\n\n"
        "The library's map before its min-max scaling: ReLU'd unless ``relu=False``, upsampled "
        "bilinearly to the input size."
    )
    tags = ("cam", "feature-map", "pytorch-grad-cam", *spec.tags)
    return register_explainer(name, tags=tags, requires=("pytorch_grad_cam",))(cls)


def _register_all() -> list[str]:
    try:
        import pytorch_grad_cam
        from pytorch_grad_cam.base_cam import BaseCAM
    except ImportError:
        return []
    names = []
    for class_name, library_class in inspect.getmembers(pytorch_grad_cam, inspect.isclass):
        if not issubclass(library_class, BaseCAM) or library_class is BaseCAM:
            continue
        if class_name in EXCLUDED:
            continue
        overrides = {"compute_cam_per_layer", "aggregate_multi_layers"} & set(vars(library_class))
        if overrides and class_name != "FullGrad":
            EXCLUDED[class_name] = (
                f"overrides {', '.join(sorted(overrides))}: it scales inside its own code, which "
                "the adapter cannot undo"
            )
            continue
        names.append(_plugin(library_class, _SPECS.get(class_name, _Spec())).name)
    finer = getattr(pytorch_grad_cam, "FinerCAM", None)
    if finer is not None:
        names.append(_plugin(finer, _Spec(cost=3), mixin=_FinerMixin).name)  # +1: the classes
    sess = getattr(pytorch_grad_cam, "SESS", None)
    if sess is not None:
        spec = _Spec(
            fields=(("num_scales", int, 12), ("batch_size", int, setting(32))),
            fast_params={"num_scales": 1},  # one patch: the image (tests use 2 against the library)
            # per patch: a forward for its score, a forward and a backward for its Grad-CAM
            cost=lambda p: 3 * _sess_patches(p.num_scales),
        )
        names.append(_plugin(sess, spec, mixin=_SessMixin).name)
    return names


REGISTERED = _register_all()
