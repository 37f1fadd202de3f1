"""Feature-removal curves over features, ``feature_deletion`` and ``feature_insertion`` (named
apart from the image metrics ``deletion`` / ``insertion`` that share the board): the tabular form
of Petsiuk et al., BMVC 2018, https://arxiv.org/abs/1806.07421; OpenXAI's prediction-gap metrics
(Agarwal et al. 2022) measure the same removals at a fixed k.

Definition. Rank the F features of row x by attribution a, highest first (ties broken by a
permutation seeded by the row). Draw m background rows z_1..z_m (with replacement, seeded by the
row). Removing feature i sets it to z_j's value. The deletion curve is
D(k) = (1/m) sum_j f_t(x with its top-k features replaced by z_j's), k = 0..F; the insertion curve is
I(k) = (1/m) sum_j f_t(z_j with its top-k features set to x's). The scores are the areas under the
curves over the fraction of features k/F in [0, 1] (trapezoid rule), in the units of the target
output (a probability): ``deletion_auc`` (lower is better: the output falls fast when the most
important features go) and ``insertion_auc`` (higher is better). Features are ranked by signed
attribution: a feature that lowers the target output is removed last. The curves themselves are
scores too, for plotting: ``deletion@f`` / ``insertion@f`` is the curve, linear between its points
k/F, at the fraction f = 0.1, 0.2, ..., 0.9 of features moved (``CURVE_FRACTIONS``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark.tabular import rank_features
from benchmark.tabular.metrics import (
    TabularMetric,
    background_draws,
    register_metric,
    target_outputs,
)


def removal_curves(model, rows, targets, attributions, *, draws: int, seed: int, insert: bool):
    """The curves [B, F+1] of the module's definition (deletion, or insertion with ``insert``)."""
    b, f = rows.shape
    order = rank_features(attributions, rows, seed)
    z = background_draws(model, rows, seed, draws, "removal")  # [B, m, F]
    # keep[b, k, i]: feature i is among row b's top-k features
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.arange(f)[None].repeat(b, 0), axis=1)
    top = position[:, None, :] < np.arange(f + 1)[None, :, None]  # [B, F+1, F]
    x = rows[:, None, None, :]
    zz = z[:, None, :, :]
    mask = top[:, :, None, :]
    stacked = np.where(mask, x, zz) if insert else np.where(mask, zz, x)  # [B, F+1, m, F]
    return target_outputs(model, stacked, targets).mean(axis=2)


def area(curves: np.ndarray) -> np.ndarray:
    """Trapezoid area of curves [B, F+1] over k/F in [0, 1]."""
    return (curves[:, 1:] + curves[:, :-1]).sum(axis=1) / (2 * (curves.shape[1] - 1))


CURVE_FRACTIONS = tuple(k / 10 for k in range(1, 10))


def curve_points(curves: np.ndarray, name: str) -> dict[str, np.ndarray]:
    """``{name@f: [B]}``: the curves [B, F+1], linear between their points k/F, at each f of
    :data:`CURVE_FRACTIONS` (the trapezoid area is the area under this piecewise-linear curve)."""
    grid = np.linspace(0.0, 1.0, curves.shape[1])
    return {
        f"{name}@{f:g}": np.array([np.interp(f, grid, c) for c in curves]) for f in CURVE_FRACTIONS
    }


@dataclass
class _Removal(TabularMetric):
    draws: int = 10
    seed: int = 0
    fast_params = {"draws": 3}

    def cost(self, n_features: int) -> int:
        return (n_features + 1) * self.draws


@register_metric("feature_deletion", tags=("faithfulness",))
@dataclass
class Deletion(_Removal):
    """Area under the deletion curve over features (lower is better)."""

    version = "2"  # v2: the curve's points as scores
    higher_is_better = {"deletion_auc": False} | {f"deletion@{f:g}": False for f in CURVE_FRACTIONS}

    def score(self, *, model, rows, targets, attributions, reference):
        curves = removal_curves(
            model, rows, targets, attributions, draws=self.draws, seed=self.seed, insert=False
        )
        return {"deletion_auc": area(curves), **curve_points(curves, "deletion")}


@register_metric("feature_insertion", tags=("faithfulness",))
@dataclass
class Insertion(_Removal):
    """Area under the insertion curve over features (higher is better)."""

    version = "2"  # v2: the curve's points as scores
    higher_is_better = {"insertion_auc": True} | {f"insertion@{f:g}": True for f in CURVE_FRACTIONS}

    def score(self, *, model, rows, targets, attributions, reference):
        curves = removal_curves(
            model, rows, targets, attributions, draws=self.draws, seed=self.seed, insert=True
        )
        return {"insertion_auc": area(curves), **curve_points(curves, "insertion")}
