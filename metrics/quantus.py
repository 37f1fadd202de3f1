"""Quantus's image metrics by name (Hedström et al., "Quantus: An Explainable AI Toolkit for
Responsible Evaluation of Neural Network Explanations and Beyond", JMLR 24(34), 2023,
arXiv 2202.06861), one plugin per metric: ``quantus_<snake_case class name>``.

Definition. Every metric class of the installed ``quantus`` that applies to images and scores given
maps is registered by introspection (a Quantus upgrade that adds one adds a plugin): the score is
the number Quantus's class returns for the image, called with ``a_batch`` = the harness's map
(resized bilinearly to the image by the base class) as ``[B,1,H,W]``, ``x_batch`` = the normalised
model inputs (channel first), ``y_batch`` = ``targets``, ``s_batch`` = the masks (localisation
metrics), ``disable_warnings=True``, no aggregation, ``batch_size`` images per Quantus batch. The
model Quantus calls is the harness's classifier as a torch module (normalised NCHW input -> logits,
on the model's device, in eval mode); ``softmax`` is Quantus's per-metric default. Every option of
the class's constructor whose value can be recorded is a parameter under its Quantus name (a
function option, e.g. ``similarity_func``, by the name of a function in ``quantus``). The score
keeps Quantus's name, its direction is Quantus's ``score_direction``, and booleans (Monotonicity,
Completeness, PointingGame) become 1.0 / 0.0. Where Quantus returns a curve per image
(RegionPerturbation, Selectivity, PixelFlipping) the score is Quantus's own area under it
(``calculate_auc``: trapezoid with ``dx = 1``, not divided by the steps), the number its
``get_auc_score`` averages. What the adapter changes, each a documented Quantus trap:

* ``normalise=True`` (Quantus's default) divides each map by its own largest absolute value:
  Quantus's ``normalise_by_max`` takes the maximum over the whole batch, so an image's score would
  depend on its batch-mates (pinned in the tests).
* A score Quantus leaves undefined (NaN: a correlation with a constant side, e.g. any correlation
  metric on a constant map) is 0 (no relation shown), as in the project's faithfulness
  correlation; an infinite one stays infinite.
* Random numbers: every call runs with numpy's and torch's global generators seeded from
  ``random_seed`` and restored afterwards (Quantus draws its "uniform" baseline on every
  perturbation, whichever baseline is used). A metric whose numbers depend on draws (its own code
  draws, e.g. FaithfulnessCorrelation's subsets; its ``perturb_baseline`` is random; a function
  option draws noise) runs one image at a time, each seeded from ``random_seed`` and the image's
  bytes, so its score does not depend on the batch. The field is not called ``seed``: on a
  constant map the random metrics are undefined under any draw.
* Localisation metrics see only the images whose mask is not empty (the others are NaN).
* Constant maps: Quantus refuses a batch of maps that are all 0 or all 1 (an assertion, not a
  score); the adapter skips that check, so a constant map gets the score Quantus's formula gives.
* quantus 0.6.0 calls ``np.trapz``, which numpy 2.4 removed: ``np.trapezoid`` (the same rule) is
  lent under that name during the call.

Not registered (``EXCLUDED``, with the reason): metrics that re-explain (randomisation, robustness,
input invariance: they need the explainer, which this contract does not pass) and those whose
number is not one per image or that fail on RGB images. ``cost()`` is Quantus's model evaluations
per image at 224x224 RGB (``NOMINAL_SHAPE``), from each metric's loop structure (``FORWARDS``,
checked against counted forwards in the tests); a metric not in that table is counted on a
nominal probe image.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import math
import re
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from benchmark.maps import image_seeds
from explainers._perturbation import seeded_globals
from metrics import Metric, register_metric, setting

FAMILY_PREFIX = "quantus_"
NOMINAL_SHAPE = (3, 224, 224)  # (C, H, W) at which cost() is stated

# Constructor options that are not the metric's parameters (or that the adapter fixes).
_FIXED = {
    "args",
    "kwargs",
    "return_aggregate",
    "aggregate_func",
    "default_plot_func",
    "disable_warnings",
    "display_progressbar",
    "return_auc_per_sample",  # PixelFlipping: True, one number per image
    "normalise_func_kwargs",  # set per image (see the module docstring)
}
_REEXPLAINS = "re-explains (under a changed model or input): needs the explainer-aware contract"
_UNUSABLE = {
    "Sufficiency": "batch-dependent: an image's score compares it with the other images of the batch",
    "BatchSufficiency": "batch-dependent like Sufficiency, and fails on image batches (reshape)",
    "Consistency": "batch-dependent: an image's score compares it with the other images of the batch",
    "Focus": "needs mosaics of four images and their explanations (custom_batch), not given maps",
    "IROF": "fails on RGB inputs in quantus 0.6.0 (its removal mask is [B,1,H,W]) and its 'mean' "
    "baseline is taken over the batch; the project's `irof` has a Quantus-compatible variant",
    "ROAD": "fails on RGB inputs in quantus 0.6.0 (IndexError: ranks C*H*W values, imputes an H*W "
    "mask) and scores only the first batch; use the project's `road` / `road_accuracy`",
    "SensitivityN": "returns one correlation per subset size over the whole batch, not one number "
    "per image",
    "ModelParameterRandomisation": "deprecated alias of MPRT, which re-explains",
}


def _n(shape: tuple[int, int, int]) -> int:
    return math.prod(shape)  # Quantus's features: every channel value


def _patches(size: int, shape: tuple[int, int, int]) -> int:
    return math.ceil(shape[1] / size) * math.ceil(shape[2] / size)  # blocks of the padded image


# Model evaluations per image of each metric: (options, (C,H,W)) -> count, from its loops.
FORWARDS: dict[str, Callable[[dict[str, Any], tuple[int, int, int]], int]] = {
    "FaithfulnessCorrelation": lambda p, s: 1 + p["nr_runs"],
    "FaithfulnessEstimate": lambda p, s: 1 + math.ceil(_n(s) / p["features_in_step"]),
    "Infidelity": lambda p, s: (
        1 + p["n_perturb_samples"] * sum(_patches(k, s) for k in p["perturb_patch_sizes"])
    ),
    "Monotonicity": lambda p, s: math.ceil(_n(s) / p["features_in_step"]),
    "MonotonicityCorrelation": lambda p, s: (
        1 + p["nr_samples"] * math.ceil(_n(s) / p["features_in_step"])
    ),
    "NonSensitivity": lambda p, s: 1 + math.ceil(_n(s) / p["features_in_step"]),
    "PixelFlipping": lambda p, s: math.ceil(_n(s) / p["features_in_step"]),
    "RegionPerturbation": lambda p, s: (
        1 + min(p["regions_evaluation"], _patches(p["patch_size"], s))
    ),
    "Selectivity": lambda p, s: _patches(p["patch_size"], s),
    "Completeness": lambda p, s: 2,
}

# Small options for the contract tests (12x12 images): Quantus's defaults need 224 px or take
# minutes (one forward per channel value).
_FAST = {
    "FaithfulnessCorrelation": {"nr_runs": 8, "subset_size": 20},
    "FaithfulnessEstimate": {"features_in_step": 36},
    "Infidelity": {"n_perturb_samples": 2, "perturb_patch_sizes": [6]},
    "Monotonicity": {"features_in_step": 36},
    "MonotonicityCorrelation": {"nr_samples": 2, "features_in_step": 36},
    "NonSensitivity": {"features_in_step": 1},  # quantus 0.6.0 fails on any other step
    "PixelFlipping": {"features_in_step": 36},
    "RegionPerturbation": {"patch_size": 4, "regions_evaluation": 4},
    "Selectivity": {"patch_size": 6},
    "TopKIntersection": {"k": 20},
}


# Options that count pixels of one image, which Quantus requires to be fewer than the image has.
_PIXEL_COUNTS = {"TopKIntersection": "k"}


def snake_case(name: str) -> str:
    """'TopKIntersection' -> 'top_k_intersection', 'IROF' -> 'irof', 'SensitivityN' ->
    'sensitivity_n'."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


class _Logits(nn.Module):
    """The classifier as the torch module Quantus calls: normalised NCHW images -> logits."""

    def __init__(self, model) -> None:
        super().__init__()
        self.net = model.net
        self.model = model
        self.eval()  # Quantus refuses modules in training mode

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)


_RANDOM_BASELINES = {"uniform", "neighbourhood_random_min_max"}
_DRAWS = re.compile(r"np\.random\.|torch\.rand")


@contextlib.contextmanager
def _quantus_compat():
    """quantus 0.6.0's ``calculate_auc`` calls ``np.trapz`` (removed in numpy 2.4): lend it
    ``np.trapezoid``. Its ``assert_attributions`` refuses a batch of maps that are all 0 or all 1
    (a guard, not a score): skip that one check, so constant maps are scored like any other."""
    from quantus.helpers import asserts

    check = asserts.assert_attributions

    def assert_attributions(x_batch, a_batch):
        if not (np.all(a_batch == 0) or np.all(a_batch == 1)):
            check(x_batch=x_batch, a_batch=a_batch)

    lend_trapz = not hasattr(np, "trapz")
    if lend_trapz:
        np.trapz = np.trapezoid
    asserts.assert_attributions = assert_attributions
    try:
        yield
    finally:
        asserts.assert_attributions = check
        if lend_trapz:
            del np.trapz


def _resolve(option: str, value: Any) -> Any:
    """A function option given by name -> the function of that name in ``quantus``."""
    import quantus

    if not (option.endswith("_func") and isinstance(value, str)):
        return value
    function = getattr(quantus, value, None)
    if not callable(function):
        raise ValueError(
            f"{option}={value!r} is not a function of quantus {quantus.__version__}: name one of "
            "quantus.functions (e.g. the default shown by `python -m benchmark ls metrics`)"
        )
    return function


def _constant_rows_undefined(similarity: Callable) -> Callable:
    """Quantus's batched Spearman fails when a row is constant (scipy returns a bare float NaN):
    such rows are NaN (undefined), the others are computed by Quantus's function."""

    @functools.wraps(similarity)
    def batched_safely(a, b, batched: bool = False, **kwargs):
        if not batched:
            return similarity(a=a, b=b, batched=False, **kwargs)
        a, b = np.asarray(a), np.asarray(b)
        defined = (np.ptp(a, axis=1) > 0) & (np.ptp(b, axis=1) > 0)
        values = np.full(len(a), np.nan)
        if defined.any():
            values[defined] = similarity(a=a[defined], b=b[defined], batched=True, **kwargs)
        return values

    return batched_safely


def _per_image_value(value: Any) -> float:
    value = np.asarray(value, dtype=np.float64)
    if value.ndim == 1:  # a curve: Quantus's own area under it
        from quantus.helpers.utils import calculate_auc

        with _quantus_compat():
            return float(calculate_auc(value))
    if value.ndim != 0:
        raise ValueError(f"Quantus returned an array of shape {value.shape} for one image")
    return float(value)


class QuantusMetric(Metric):
    """Shared body of the quantus_* plugins (a dataclass per Quantus class, made below)."""

    quantus_class: ClassVar[type]
    options: ClassVar[tuple[str, ...]]  # the Quantus constructor options that are fields
    score_name: ClassVar[str]

    def __post_init__(self) -> None:
        functions = [f for f in self.quantus_options().values() if inspect.isfunction(f)]
        sources = [inspect.getsource(inspect.getmodule(self.quantus_class))]
        sources += [inspect.getsource(f) for f in functions]
        self.draws_random = getattr(self, "perturb_baseline", None) in _RANDOM_BASELINES or any(
            _DRAWS.search(source) for source in sources
        )

    def quantus_options(self) -> dict[str, Any]:
        options = {option: _resolve(option, getattr(self, option)) for option in self.options}
        if callable(options.get("similarity_func")):
            options["similarity_func"] = _constant_rows_undefined(options["similarity_func"])
        return options

    def _quantus(self, shape_axes: int):
        kwargs = dict(self.quantus_options(), disable_warnings=True, display_progressbar=False)
        kwargs["return_aggregate"] = False
        parameters = inspect.signature(self.quantus_class.__init__).parameters
        if "return_auc_per_sample" in parameters:
            kwargs["return_auc_per_sample"] = True
        if "normalise_func_kwargs" in parameters:  # per image, not the batch's maximum
            kwargs["normalise_func_kwargs"] = {"normalise_axes": list(range(1, shape_axes))}
        return self.quantus_class(**kwargs)

    def cost(self) -> int:
        count = FORWARDS.get(self.quantus_class.__name__)
        if count is not None:
            return int(count(self.quantus_options(), NOMINAL_SHAPE))
        if self.tags[0] in ("complexity", "localisation"):
            return 0
        return count_forwards(self, NOMINAL_SHAPE)

    def supports(self, image_shape: tuple[int, int, int]) -> str | None:
        option = _PIXEL_COUNTS.get(self.quantus_class.__name__)
        pixels = image_shape[1] * image_shape[2]
        if option is not None and getattr(self, option) >= pixels:
            return (
                f"{option} = {getattr(self, option)} top pixels is not smaller than the {pixels} "
                f"pixels of a {image_shape[1]}x{image_shape[2]} image: set a smaller {option} in "
                f"the suite's metric_params.{self.name}"
            )
        return None

    def score(self, *, model, images, targets, saliency, masks):
        values = torch.full((len(images),), float("nan"), dtype=torch.float64)
        keep = masks.flatten(1).any(1) if self.needs_masks else torch.ones(len(images), dtype=bool)
        rows = keep.nonzero().flatten()
        if len(rows):
            at = rows.to(images.device)
            values[rows] = self._scores(
                _Logits(model),
                images[at],
                targets[at.to(targets.device)],
                saliency[rows.to(saliency.device)],
                masks[rows] if self.needs_masks else None,
            )
        return {self.score_name: values}

    def _scores(self, module, images, targets, saliency, masks) -> Tensor:
        device = images.device
        if not self.draws_random:
            with seeded_globals(self.random_seed, device):
                return self._call(module, images, targets, saliency, masks)
        parts = []
        for i, seed in enumerate(image_seeds(images, self.random_seed)):
            one = slice(i, i + 1)
            with seeded_globals(seed, device):
                mask = masks[one] if masks is not None else None
                parts.append(self._call(module, images[one], targets[one], saliency[one], mask))
        return torch.cat(parts)

    def _call(self, module, images, targets, saliency, masks) -> Tensor:
        x = images.detach().to("cpu", torch.float32).numpy().copy()
        a = saliency.detach()[:, None].to("cpu", torch.float32).numpy().copy()
        s = masks[:, None].numpy().copy() if masks is not None else None
        with _quantus_compat(), np.errstate(all="ignore"):
            out = self._quantus(a.ndim)(
                model=module,
                x_batch=x,
                y_batch=targets.detach().cpu().numpy().copy(),
                a_batch=a,
                s_batch=s,
                channel_first=True,
                explain_func=None,
                softmax=self.softmax,
                device=str(images.device),
                batch_size=self.batch_size,
            )
        if isinstance(out, dict) or len(out) != len(images):
            raise ValueError(
                f"quantus.{self.quantus_class.__name__} returned {type(out).__name__} of "
                f"{len(out)} entries for {len(images)} images, not one number per image"
            )
        values = torch.tensor([_per_image_value(v) for v in out], dtype=torch.float64)
        return torch.nan_to_num(values, nan=0.0, posinf=math.inf, neginf=-math.inf)


def count_forwards(metric: QuantusMetric, shape: tuple[int, int, int]) -> int:
    """Images the Quantus metric passes through the model for one image of ``shape``, counted on
    a linear probe model (for metrics without a ``FORWARDS`` entry, and for testing it)."""
    from benchmark.models import Classifier

    counted = [0]

    class Probe(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(math.prod(shape), 4)

        def forward(self, images: Tensor) -> Tensor:
            counted[0] += len(images)
            return self.linear(images.flatten(1))

    g = torch.Generator().manual_seed(0)
    model = Classifier(Probe(), (0.0,) * shape[0], (1.0,) * shape[0], shape, "probe")
    masks = torch.zeros(1, *shape[1:], dtype=torch.bool)
    masks[:, : shape[1] // 2] = True
    metric(
        model=model,
        images=torch.randn(1, *shape, generator=g),
        targets=torch.tensor([1]),
        saliency=torch.rand(1, *shape[1:], generator=g),
        masks=masks if metric.needs_masks else None,
    )
    return counted[0]


def _recordable(value: Any) -> bool:
    if isinstance(value, (bool, int, float, str, type(None))):
        return True
    return isinstance(value, (list, tuple)) and all(_recordable(v) for v in value)


def _option_fields(cls: type) -> list[tuple[str, type, dataclasses.Field]]:
    """The constructor options of a Quantus class as dataclass fields, each defaulting to the value
    a default instance holds (Quantus resolves ``None`` defaults in ``__init__``)."""
    import quantus

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        instance = cls(disable_warnings=True, display_progressbar=False)
    fields = []
    for option, parameter in inspect.signature(cls.__init__).parameters.items():
        if option == "self" or option in _FIXED or parameter.default is inspect.Parameter.empty:
            continue
        default = getattr(instance, option, parameter.default)
        if isinstance(default, functools.partial):  # a perturb_func bound to its baseline
            default = default.func
        if callable(default):  # recorded by name, when quantus exposes it under that name
            named = getattr(quantus, default.__name__, None) is default
            default = default.__name__ if named else parameter.default
        if not _recordable(default):
            continue
        if isinstance(default, list):
            spec = dataclasses.field(default_factory=lambda v=default: list(v))
        else:
            spec = dataclasses.field(default=default)
        fields.append((option, Any, spec))
    return fields


def _reason_excluded(cls: type) -> str | None:
    from quantus.helpers.enums import DataType, EvaluationCategory

    if DataType.IMAGE not in getattr(cls, "data_applicability", ()):
        return "not an image metric"
    if cls.__name__ in _UNUSABLE:
        return _UNUSABLE[cls.__name__]
    category = getattr(cls, "evaluation_category", None)
    source = inspect.getsource(inspect.getmodule(cls))
    if category in (EvaluationCategory.RANDOMISATION, EvaluationCategory.ROBUSTNESS) or re.search(
        r"explain_batch\(|self\.explain_func\(", source
    ):
        return _REEXPLAINS
    return None


def _quantus_classes() -> dict[str, type]:
    import quantus
    from quantus.metrics.base import Metric as QuantusBase

    return {
        name: cls
        for name, cls in sorted(vars(quantus).items())
        if inspect.isclass(cls) and issubclass(cls, QuantusBase) and cls is not QuantusBase
    }


def _make_plugin(cls: type) -> type:
    import quantus
    from quantus.helpers.enums import ScoreDirection

    name = FAMILY_PREFIX + snake_case(cls.__name__)
    category = cls.evaluation_category.value.lower()
    fields = _option_fields(cls)
    softmax = inspect.signature(cls.__call__).parameters["softmax"].default
    fields += [
        ("softmax", Any, dataclasses.field(default=softmax)),
        ("random_seed", int, dataclasses.field(default=0)),
        ("batch_size", int, setting(64)),
    ]
    summary = (cls.__doc__ or cls.__init__.__doc__ or cls.__name__).strip().splitlines()[0]
    namespace = {
        "__doc__": f"Quantus {cls.__name__}: {summary}",
        "__module__": __name__,
        "version": f"1+quantus{quantus.__version__}",
        "higher_is_better": {
            snake_case(cls.__name__): cls.score_direction == ScoreDirection.HIGHER
        },
        "needs_masks": category == "localisation",
        "fast_params": _FAST.get(cls.__name__, {}),
        "quantus_class": cls,
        "options": tuple(option for option, _, _ in fields[:-3]),
        "score_name": snake_case(cls.__name__),
    }
    plugin = dataclasses.make_dataclass(
        cls.__name__, fields, bases=(QuantusMetric,), namespace=namespace
    )
    plugin.__qualname__ = cls.__name__
    return register_metric(name, tags=(category, "quantus"), requires=("quantus",))(plugin)


def _register_all() -> tuple[dict[str, type], dict[str, str]]:
    try:
        classes = _quantus_classes()
    except ImportError:  # quantus not installed: no plugins
        return {}, {}
    excluded = {name: reason for name, cls in classes.items() if (reason := _reason_excluded(cls))}
    plugins = {name: _make_plugin(cls) for name, cls in classes.items() if name not in excluded}
    return plugins, excluded


PLUGINS, EXCLUDED = _register_all()  # Quantus class name -> plugin class / reason not registered
