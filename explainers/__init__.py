"""Explainer plugins: one file per method, discovered automatically.

Every explainer is a dataclass whose fields are its hyperparameters (recorded with the results) and
whose ``explain`` method implements one contract::

    explain(model, images [B,C,H,W] normalised, targets [B] int64) -> saliency [B,H,W] float32

Higher = more important; raw scores (never min-max normalised: metrics decide what to do with the
scale); detached; finite; on the images' device; batched, and independent of the batch it is in (an
image gets the same map alone or among others). Randomised methods draw from a seed and the image's
content, never from global state.

To add one, drop ``explainers/my_method.py`` containing::

    @register_explainer("my_method", tags=("gradient",))
    @dataclass
    class MyMethod(Explainer):
        '''My method (Author et al., year, https://...).'''
        version = "1"
        def explain(self, model, images, targets): ...

plus ``tests/explainers/test_my_method.py`` with one closed-form test; the contract tests in
``tests/explainers/test_contract.py`` pick the new plugin up by themselves.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from benchmark.registry import Registry, plugin_params

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

    def prepare(self, model, background: Tensor) -> None:
        """Optional: called once per (dataset, model) by the runner, before any ``explain``, with a
        seeded sample of the dataset's normalised images [N,C,H,W] (e.g. SHAP's background set).
        Explainers that need no data ignore it; without it they fall back to a documented default."""

    def explain(self, model, images: Tensor, targets: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, model, images: Tensor, targets: Tensor) -> Tensor:
        return self.explain(model, images, targets)

    def params(self) -> dict[str, Any]:
        """Hyperparameters, as recorded in the results store and cache keys."""
        return plugin_params(self)


__all__ = ["Explainer", "create_explainer", "list_explainers", "register_explainer", "registry"]
