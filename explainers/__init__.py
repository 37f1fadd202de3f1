"""Explainer plugins: one file per method, discovered automatically.

Every explainer is a dataclass whose fields are its hyperparameters (recorded with the results and
part of every cache key) and whose ``explain`` method implements one contract::

    explain(model, images [B,C,H,W] normalised, targets [B] int64) -> saliency [B,H,W] float32

Higher = more important; raw scores (never min-max normalised: metrics decide what to do with the
scale); detached; finite; on the images' device; batched, and independent of the batch it is in (an
image gets the same map alone or among others). Randomised methods draw from a ``seed`` field and
the image's content (:func:`generators`, :func:`image_seeds`), never from global state. In a run, a
field named ``seed`` defaults to the suite's ``seed`` unless the suite sets it for the plugin.

To add one, copy ``explainers/_template.py`` to ``explainers/<name>.py`` (registry name = module
name) and fill it in; it passes the contract tests as it stands. The contract tests in
``tests/explainers/test_contract.py`` pick the new plugin up by themselves; add one closed-form test
in ``tests/explainers/test_<name>.py``. A new plugin appears in ``python -m benchmark ls
explainers`` and in every suite that selects explainers by wildcard (``full``), never in the
curated ``default`` suite until it is named there.

What a plugin declares besides ``explain``:

* ``version``: bump it whenever the maps would change (it is part of the cache key);
* ``cost()``: model evaluations per image (forward and backward passes through the network, each
  counting one) at the instance's parameters, so ``ls`` and suites can budget;
* ``fast_params``: small budgets for the contract tests and smoke runs;
* ``supports(model)``: None, or why the method cannot apply to ``model`` (the board shows "n/a");
* ``prepare(model, background)``: optional one-off set-up per (dataset, model).

Helpers a plugin needs are importable from here: :func:`target_scores`, :func:`generators`,
:func:`image_seeds`, :func:`upsample`, :func:`setting` (a field that changes how a plugin runs,
never its numbers, e.g. a batch size) and :class:`FeatureLayerError`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from benchmark.maps import generators, image_seeds, target_scores
from benchmark.maps import resize_maps as upsample
from benchmark.models import FeatureLayerError
from benchmark.registry import Registry, plugin_params, setting

registry = Registry("explainer", package=__name__, entry_point_group="benchmark.explainers")


def register_explainer(name: str, *, tags=(), requires=()):
    """Class decorator registering an :class:`Explainer` under ``name`` (= its module name)."""
    return registry.register(name, tags=tags, requires=requires)


def create_explainer(name: str, **params: Any) -> Explainer:
    """Instantiate a registered explainer: ``create_explainer("grad_cam")``."""
    return registry.create(name, **params)


def list_explainers(pattern: str = "*") -> list[str]:
    """Registered explainer names matching shell wildcards, e.g. ``list_explainers("grad*,cam")``."""
    return registry.list(pattern)


class Explainer:
    """Base class of explainer plugins (subclasses are dataclasses)."""

    name: ClassVar[str]
    tags: ClassVar[tuple[str, ...]]
    version: ClassVar[str] = "1"
    # Parameters for a quick run (contract tests, smoke runs): small sample budgets.
    fast_params: ClassVar[dict[str, Any]] = {}

    def explain(self, model, images: Tensor, targets: Tensor) -> Tensor:
        raise NotImplementedError

    def cost(self) -> int:
        """Model evaluations (forward or backward passes) per image at these parameters."""
        raise NotImplementedError(f"explainer {self.name!r} does not declare its cost()")

    def supports(self, model) -> str | None:
        """None if the method applies to ``model``, else the reason it does not (shown as n/a).
        The runner asks before ``prepare`` and any ``explain``."""
        return None

    def prepare(self, model, background: Tensor) -> None:
        """Optional: called once per (dataset, model) by the runner, before any ``explain``, with a
        seeded sample of the dataset's normalised images [N,C,H,W] (e.g. SHAP's background set).
        Explainers that need no data ignore it; without it they fall back to a documented default."""

    def params(self) -> dict[str, Any]:
        """Hyperparameters, as recorded in the results store and cache keys."""
        return plugin_params(self)


__all__ = [
    "Explainer",
    "FeatureLayerError",
    "create_explainer",
    "generators",
    "image_seeds",
    "list_explainers",
    "register_explainer",
    "registry",
    "setting",
    "target_scores",
    "upsample",
]
