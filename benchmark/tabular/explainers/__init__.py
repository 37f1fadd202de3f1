"""Tabular explainer plugins, discovered from this package's modules (one module may register
several, e.g. the two TreeExplainer variants).

One contract::

    explain(model, rows [B,F] float64, targets [B] int) -> attributions [B,F] float64

Attributions are for the target class's output (its probability for a classifier), signed, raw
(never normalised), finite, deterministic and independent of the batch a row is in: randomised
methods draw from the ``seed`` field and the row's content (:func:`benchmark.tabular.row_seeds`).
Methods that need a background use ``model.background`` (a seeded sample of the training rows),
its first ``background_size`` rows. :meth:`TabularExplainer.explain` is a template method: it checks
the inputs and :meth:`~TabularExplainer.supports`, calls the plugin's ``attribute`` and checks its
result. A method that cannot apply to a model (TreeExplainer on an MLP) raises
:class:`NotApplicable` with the reason, which the runner records as "n/a".
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np

from benchmark.registry import Registry, plugin_params, setting

registry = Registry("tabular explainer", package=__name__)


class NotApplicable(ValueError):
    """The method cannot explain this model; the message says why."""


def register_explainer(name: str, *, tags=(), requires=()):
    """Class decorator registering a :class:`TabularExplainer` under ``name``."""
    return registry.register(name, tags=tags, requires=requires)


def create_explainer(name: str, **params: Any) -> TabularExplainer:
    return registry.create(name, **params)


def list_explainers(pattern: str = "*") -> list[str]:
    return registry.list(pattern)


class TabularExplainer:
    """Base class of tabular explainer plugins (subclasses are dataclasses)."""

    name: ClassVar[str]
    tags: ClassVar[tuple[str, ...]]
    version: ClassVar[str] = "1"
    exact: ClassVar[bool] = False  # computes Shapley values exactly (efficiency holds)
    fast_params: ClassVar[dict[str, Any]] = {}

    def supports(self, model) -> str | None:
        """None if the method applies to ``model``, else the reason it does not."""
        return None

    def cost(self, n_features: int) -> int:
        """Model evaluations (rows passed through the model) per explained row."""
        raise NotImplementedError(f"explainer {self.name!r} does not declare its cost()")

    def attribute(self, model, rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def explain(self, model, rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.float64)
        targets = np.asarray(targets)
        if rows.ndim != 2 or targets.shape != (len(rows),):
            raise ValueError(
                f"rows must be [B,F] and targets [B], got {rows.shape}, {targets.shape}"
            )
        if not np.isfinite(rows).all():
            raise ValueError("rows hold NaN or infinite values")
        if not np.issubdtype(targets.dtype, np.integer) or (targets < 0).any():
            raise ValueError(f"targets must be non-negative class indices, got {targets}")
        reason = self.supports(model)
        if reason:
            raise NotApplicable(f"{self.name} cannot explain {model.name}: {reason}")
        if len(rows) == 0:
            return np.zeros((0, rows.shape[1]))
        out = np.asarray(self.attribute(model, rows, targets.astype(np.int64)), dtype=np.float64)
        if out.shape != rows.shape or not np.isfinite(out).all():
            raise RuntimeError(
                f"{self.name} returned {out.shape} (finite: {np.isfinite(out).all()})"
            )
        return out

    def params(self) -> dict[str, Any]:
        return plugin_params(self)


def target_function(model, target: int) -> Callable[[np.ndarray], np.ndarray]:
    """``X [N,F] -> the target class's output [N]``, the scalar function a method explains."""
    return lambda x: model.outputs(np.asarray(x, np.float64))[:, target]


def cached(model, key: Any, build: Callable[[], Any]) -> Any:
    """A per-model memo (e.g. a shap explainer built once per model and parameters)."""
    memo = model.__dict__.setdefault("_explainer_memo", {})
    if key not in memo:
        memo[key] = build()
    return memo[key]


@contextlib.contextmanager
def numpy_global_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG for a library that draws from it (shap's Kernel and Permutation
    explainers), restoring the previous state afterwards. Not thread-safe."""
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)


__all__ = [
    "NotApplicable",
    "TabularExplainer",
    "cached",
    "create_explainer",
    "list_explainers",
    "numpy_global_seed",
    "register_explainer",
    "registry",
    "setting",
    "target_function",
]
