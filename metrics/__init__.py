"""Metric plugins: one file per metric family, discovered automatically.

Every metric is a dataclass whose fields are its parameters (recorded with the results) and which is
called with one argument order, always by keyword::

    metric(model=model, images=images, targets=targets, saliency=saliency, masks=masks)
        -> {score name: per-image values [B] float}

``images`` [B,C,H,W] are normalised model inputs, ``targets`` [B] the explained classes, ``saliency``
[B,h,w] raw maps (resized by the metric where needed), ``masks`` [B,H,W] bool or None. A metric never
aggregates over images: the runner does (means, bootstrap CIs, paired tests). A value that does not
apply to one image (an empty mask) is NaN, and the runner counts it as skipped.

Class attributes: ``higher_is_better`` maps every score name the metric returns to its direction;
``needs_masks`` says whether it needs ground-truth masks; ``needs_labels`` whether ``targets`` must
be the ground-truth labels rather than the explained classes; ``version`` changes whenever the numbers
would. The exact definitions are in each module's docstring (and docs/METRICS.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor

from benchmark.registry import Registry, plugin_params

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


class Metric:
    """Base class of metric plugins (subclasses are dataclasses)."""

    name: ClassVar[str]
    tags: ClassVar[tuple[str, ...]]
    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[Mapping[str, bool]] = {}
    needs_masks: ClassVar[bool] = False
    # True: ``targets`` must be the ground-truth labels (the runner passes them, and skips the
    # metric on datasets without labels), e.g. accuracy curves.
    needs_labels: ClassVar[bool] = False
    # The score(s) shown in each leaderboard's summary table (default: the first score).
    headline: ClassVar[tuple[str, ...]] = ()

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
    ) -> dict[str, Tensor]:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """Parameters, as recorded in the results store and cache keys."""
        return plugin_params(self)


__all__ = ["Metric", "create_metric", "list_metrics", "register_metric", "registry"]
