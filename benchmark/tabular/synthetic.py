"""Synthetic tables whose Shapley values have a closed form (the ground truth of the tabular track).

With independent features and an additive output f_c(x) = sum_i g_ci(x_i) + b_c, the interventional
Shapley value of feature i against a background B is phi_i = g_ci(x_i) - mean_{b in B} g_ci(b_i);
for the linear g_ci(x_i) = W_ci x_i this is W_ci (x_i - mean_B x_i) (Lundberg and Lee 2017,
corollary 1 with independent features), and sum_i phi_i = f_c(x) - mean_B f_c (efficiency).

:func:`synthetic_table` is the OpenXAI-style table of a suite (Agarwal et al., NeurIPS 2022): the
seeded linear model is the generator and the model explained, so its true attributions are known
and the ground-truth recovery metric applies.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class LinearModel:
    """A "model" whose class-c output is W[c] . x + b[c] (not a probability: the closed forms
    need an output linear in x). It follows :class:`~benchmark.tabular.models.TabularModel`'s
    interface; ``estimator`` is None, so tree explainers answer n/a."""

    weights: np.ndarray  # [C, F]
    bias: np.ndarray  # [C]
    background: np.ndarray  # [M, F]
    name: str = "linear"
    estimator: Any = None
    tags: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)
    key: str = "linear"

    @property
    def n_classes(self) -> int:
        return len(self.bias)

    def outputs(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(rows, np.float64) @ self.weights.T + self.bias

    def target_outputs(self, rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return self.outputs(rows)[np.arange(len(rows)), np.asarray(targets)]

    def shapley(self, rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """The exact interventional Shapley values against the first ``m`` background rows."""
        return self.shapley_against(rows, targets, self.background)

    def shapley_against(self, rows, targets, background) -> np.ndarray:
        return self.weights[np.asarray(targets)] * (rows - background.mean(0))


def independent_table(n: int, n_features: int, seed: int = 0) -> np.ndarray:
    """``n`` rows of independent features, feature j uniform on [-1, 1] times (j + 1)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, size=(n, n_features)) * np.arange(1, n_features + 1)


def linear_model(
    n_features: int = 4, n_classes: int = 2, background_size: int = 100, seed: int = 0
) -> LinearModel:
    """A :class:`LinearModel` with seeded weights (some negative) and an antithetic background of
    independent features."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(n_classes, n_features))
    bias = rng.normal(size=n_classes)
    # Antithetic background (z_1, -z_1, z_2, -z_2, ...): every even-sized prefix has mean 0, so
    # the closed form is w * x whichever ``background_size`` an explainer uses.
    half = independent_table((background_size + 1) // 2, n_features, seed + 1)
    background = np.stack([half, -half], axis=1).reshape(-1, n_features)[:background_size]
    key = hashlib.sha256(weights.tobytes() + bias.tobytes() + background.tobytes()).hexdigest()
    return LinearModel(weights, bias, background, key=key[:32])


SYNTHETIC_NAME = "synthetic-linear"


@dataclass(frozen=True)
class SyntheticTable:
    """The rows of a synthetic table with their labels (the generator's argmax) and its model."""

    rows: np.ndarray  # [N, F]
    labels: np.ndarray  # [N]
    model: LinearModel
    name: str = SYNTHETIC_NAME

    @property
    def row_ids(self) -> list[str]:
        return [f"row{i:05d}" for i in range(len(self.rows))]

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f"x{j}" for j in range(self.rows.shape[1]))

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(f"class {c}" for c in range(self.model.n_classes))


def synthetic_table(
    n_rows: int, n_features: int = 8, n_classes: int = 3, seed: int = 0
) -> SyntheticTable:
    """``n_rows`` independent rows (seed + 2, apart from the background's seed + 1) explained on
    :func:`linear_model` (``seed``); the model's info records its closed form."""
    model = linear_model(n_features, n_classes, seed=seed)
    rows = independent_table(n_rows, n_features, seed + 2)
    labels = model.outputs(rows).argmax(1)
    model.info = {
        "name": model.name,
        "features": n_features,
        "classes": n_classes,
        "seed": seed,
        "weights_sha256": model.key,
        "closed_form": "Shapley values w_t * (x - mean of the background)",
    }
    return SyntheticTable(rows, labels, model)


__all__ = [
    "SYNTHETIC_NAME",
    "LinearModel",
    "SyntheticTable",
    "independent_table",
    "linear_model",
    "synthetic_table",
]
