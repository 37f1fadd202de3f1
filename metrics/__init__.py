"""Metric plugins: one file per metric family, discovered automatically.

Every metric is a dataclass whose fields are its parameters (recorded with the results and part of
every cache key) and which is called with one argument order, always by keyword::

    metric(model=model, images=images, targets=targets, saliency=saliency, masks=masks)
        -> {score name: per-image values [B] float32}

``images`` [B,C,H,W] are normalised model inputs, ``targets`` [B] the explained classes, ``saliency``
[B,h,w] raw maps with the image's aspect ratio, ``masks`` [B,H,W] bool or None. A metric never
aggregates over images: the runner does (means, bootstrap CIs, paired tests).

``Metric.__call__`` is a template method: it validates the inputs (one message per bad image, so
the runner can drop it and keep the rest), resizes the maps bilinearly to the image size, moves
maps and masks to the CPU for mask metrics, and then calls the plugin's :meth:`Metric.score` hook
with the maps at image resolution. For mask metrics it also turns every score of an image whose
mask is empty into NaN (not applicable: skipped and counted by the runner, never a score).

To add one, copy ``metrics/_template.py`` to ``metrics/<name>.py`` (registry name = module name,
or a family adapter's ``FAMILY_PREFIX``, as ``metrics/quantus.py``);
it passes the contract tests (``tests/metrics/test_contract.py``) as it stands. Its module docstring
holds the exact definition, under the word "Definition"; ``docs/METRICS.md`` is generated from
these docstrings (``python -m benchmark ls metrics --markdown``). A new metric appears in ``ls``
and in every suite that selects metrics by wildcard (``full``), not in ``default`` until named there.

What a plugin declares (class attributes and methods):

* ``higher_is_better``: every score name it returns, with its direction;
* ``headline``: the score(s) of the board's summary table (default: the first score);
* ``needs_masks`` / ``needs_labels``: ground-truth masks, or ``targets`` that are the ground-truth
  labels (the runner passes them, and skips the metric, with a line on the board, where the
  dataset has none or the model was not trained on its classes);
* ``version``: bump it whenever the numbers would change;
* ``cost()``: model evaluations (forward passes) per image at the instance's parameters;
* ``supports(image_shape)``: a reason when the parameters do not fit images of that (C, H, W)
  (e.g. more top pixels than the image has), else None;
* ``fast_params``: small settings for the contract tests and smoke runs.

Explainer-aware metrics (the randomisation and robustness families) re-explain under a changed
model or input, so they need the method that made the maps: a metric with ``needs_explainer =
True`` is called with one more keyword, ``explainer=`` (the table's instance, already asked
``supports`` and prepared by the explain stage), and its ``score`` receives it too. It calls
``explainer.explain`` itself, on private copies of its inputs and never on the shared model (a deep
copy when it changes weights); the evaluate stage's deadline covers those calls. Its score cells
need no extra key: the saliency key inside them already names the explainer, its version and
parameters. Its ``cost()`` counts the re-explanations: ``cost(explainer, model)`` exactly, and
``cost()`` alone with the explainer at one evaluation per map and one re-explanation per changed
model or input. A suite's ``max_cost`` checks both: ``cost()`` for the table, then
``cost(explainer, model)`` for each explainer, skipping (with a line) the pairs over it. Score names may be families: a key with a
wildcard in ``higher_is_better`` (``"spearman@*"``) gives the direction of every score it matches
(e.g. one per randomised layer).

A field named ``seed`` (the tie-break of :func:`rank_pixels`, a noise seed) defaults to the
suite's ``seed`` in a run unless the suite sets it. Helpers: :func:`rank_pixels` (stable, seeded
tie-break: the only sanctioned way to rank pixels), :func:`top_count`, :func:`top_masks`,
:func:`target_probabilities` (batched softmax probability of the target), :func:`setting`.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any, ClassVar

from torch import Tensor

from benchmark.maps import resize_maps
from benchmark.registry import Registry, plugin_params, setting
from metrics._checks import check_inputs
from metrics._forward import target_probabilities
from metrics._ranking import rank_pixels, top_count, top_masks

registry = Registry("metric", package=__name__, entry_point_group="benchmark.metrics")


def register_metric(name: str, *, tags=(), requires=()):
    """Class decorator registering a :class:`Metric` under ``name`` (= its module name)."""
    return registry.register(name, tags=tags, requires=requires)


def create_metric(name: str, **params: Any) -> Metric:
    """Instantiate a registered metric: ``create_metric("road", fractions=(0.1, 0.5))``."""
    return registry.create(name, **params)


def list_metrics(pattern: str = "*") -> list[str]:
    """Registered metric names matching shell wildcards."""
    return registry.list(pattern)


class Directions(dict):
    """``higher_is_better`` whose keys may be shell wildcards: ``get("spearman@fc")`` finds the
    direction under ``"spearman@*"`` (exact names first)."""

    def get(self, score, default=None):
        if score in self:
            return self[score]
        return next((v for k, v in self.items() if fnmatchcase(score, k)), default)


class Metric:
    """Base class of metric plugins (subclasses are dataclasses); see the module docstring."""

    name: ClassVar[str]
    tags: ClassVar[tuple[str, ...]]
    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[Mapping[str, bool]] = {}
    needs_masks: ClassVar[bool] = False
    needs_labels: ClassVar[bool] = False
    needs_explainer: ClassVar[bool] = False  # score() also gets explainer= (see above)
    headline: ClassVar[tuple[str, ...]] = ()
    fast_params: ClassVar[dict[str, Any]] = {}

    @classmethod
    def headline_scores(cls) -> tuple[str, ...]:
        return cls.headline or tuple(cls.higher_is_better)[:1]

    def __call__(
        self,
        *,
        model,
        images: Tensor,
        targets: Tensor,
        saliency: Tensor,
        masks: Tensor | None = None,
        explainer=None,
    ) -> dict[str, Tensor]:
        check_inputs(images, saliency, masks, needs_masks=self.needs_masks, metric=self.name)
        extra = {}
        if self.needs_explainer:
            if explainer is None:
                raise ValueError(
                    f"metric {self.name!r} re-explains under a changed model or input: pass "
                    "explainer=<the Explainer instance that made the maps>"
                )
            extra["explainer"] = explainer
        saliency = saliency.detach()
        if self.needs_masks:
            masks = masks.detach().to("cpu").bool()
            saliency = saliency.to("cpu")
        maps = resize_maps(saliency, tuple(images.shape[-2:]))
        scores = self.score(
            model=model, images=images, targets=targets, saliency=maps, masks=masks, **extra
        )
        if not self.needs_masks:
            return {k: v.float() for k, v in scores.items()}
        empty = ~masks.flatten(1).any(1)
        return {k: v.float().masked_fill(empty, float("nan")) for k, v in scores.items()}

    def score(
        self, *, model, images: Tensor, targets: Tensor, saliency: Tensor, masks: Tensor | None
    ) -> dict[str, Tensor]:
        """The plugin hook: per-image scores [B] from validated inputs; ``saliency`` [B,H,W] is at
        the image's resolution (for mask metrics, maps and masks are on the CPU)."""
        raise NotImplementedError

    def cost(self) -> int:
        """Model evaluations (forward passes) per image at these parameters."""
        raise NotImplementedError(f"metric {self.name!r} does not declare its cost()")

    def supports(self, image_shape: tuple[int, int, int]) -> str | None:
        """Why these parameters cannot score images of ``image_shape`` (C, H, W), or None; the
        runner skips the metric on such a table with this reason (the board shows "n/a")."""
        return None

    def params(self) -> dict[str, Any]:
        """Parameters, as recorded in the results store and cache keys."""
        return plugin_params(self)


__all__ = [
    "Directions",
    "Metric",
    "create_metric",
    "list_metrics",
    "rank_pixels",
    "register_metric",
    "registry",
    "setting",
    "target_probabilities",
    "top_count",
    "top_masks",
]
