"""Tabular metric plugins, discovered from this package's modules (a module may register several).

One call, always by keyword::

    metric(model=, rows=[B,F] float64, targets=[B], attributions=[B,F], reference=None)
        -> {score name: per-row values [B] float64}

``reference`` is a second explainer's attributions of the same rows, for the metrics with
``needs_reference`` (agreement between explainers); the runner computes it with the explainer the
metric's ``reference`` field names. A metric never aggregates over rows. Randomised steps (values
drawn from ``model.background``, tie-breaks) are seeded by the ``seed`` field and each row's content,
so a row's score does not depend on its batch. Each module docstring holds its definition after the
word "Definition". :meth:`TabularMetric.__call__` validates the inputs and calls ``score``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from benchmark.registry import Registry, plugin_params
from benchmark.tabular import row_seeds

registry = Registry("tabular metric", package=__name__)


def register_metric(name: str, *, tags=(), requires=()):
    return registry.register(name, tags=tags, requires=requires)


def create_metric(name: str, **params: Any) -> TabularMetric:
    return registry.create(name, **params)


def list_metrics(pattern: str = "*") -> list[str]:
    return registry.list(pattern)


class TabularMetric:
    """Base class of tabular metric plugins (subclasses are dataclasses)."""

    name: ClassVar[str]
    tags: ClassVar[tuple[str, ...]]
    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[Mapping[str, bool]] = {}
    needs_reference: ClassVar[bool] = False
    fast_params: ClassVar[dict[str, Any]] = {}

    def __call__(
        self,
        *,
        model,
        rows: np.ndarray,
        targets: np.ndarray,
        attributions: np.ndarray,
        reference: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        rows = np.asarray(rows, np.float64)
        attributions = np.asarray(attributions, np.float64)
        targets = np.asarray(targets, np.int64)
        if rows.ndim != 2 or attributions.shape != rows.shape or targets.shape != (len(rows),):
            raise ValueError(
                f"{self.name}: rows [B,F], attributions [B,F] and targets [B] expected, got "
                f"{rows.shape}, {attributions.shape}, {targets.shape}"
            )
        if not (np.isfinite(rows).all() and np.isfinite(attributions).all()):
            raise ValueError(f"{self.name}: rows or attributions hold NaN or infinite values")
        if self.needs_reference:
            if reference is None or np.shape(reference) != rows.shape:
                raise ValueError(f"{self.name} needs reference attributions [B,F] of the same rows")
            reference = np.asarray(reference, np.float64)
        scores = self.score(
            model=model, rows=rows, targets=targets, attributions=attributions, reference=reference
        )
        return {k: np.asarray(v, np.float64) for k, v in scores.items()}

    def score(self, *, model, rows, targets, attributions, reference) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def supports(self, model) -> str | None:
        """None if the metric can score attributions of ``model``, else why not (shown as n/a)."""
        return None

    def cost(self, n_features: int) -> int:
        """Model evaluations (rows passed through the model) per scored row."""
        raise NotImplementedError(f"metric {self.name!r} does not declare its cost()")

    def params(self) -> dict[str, Any]:
        return plugin_params(self)


def background_draws(model, rows: np.ndarray, seed: int, n: int, what: str) -> np.ndarray:
    """``n`` background rows per row [B,n,F], drawn with replacement, seeded by the row's content."""
    background = model.background
    picks = [
        np.random.default_rng(s).integers(0, len(background), size=n)
        for s in row_seeds(rows, seed, what)
    ]
    return background[np.stack(picks)]


def target_outputs(model, stacked: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The target output of every row of ``stacked`` [B,...,F] (row b's target), one model call."""
    flat = stacked.reshape(-1, stacked.shape[-1])
    out = model.outputs(flat)
    per_row = flat.shape[0] // len(targets)
    return out[np.arange(len(flat)), np.repeat(targets, per_row)].reshape(stacked.shape[:-1])


__all__ = [
    "TabularMetric",
    "background_draws",
    "create_metric",
    "list_metrics",
    "register_metric",
    "registry",
    "target_outputs",
]
