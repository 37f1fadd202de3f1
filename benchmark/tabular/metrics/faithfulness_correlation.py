"""Faithfulness correlation over features, ``feature_faithfulness_correlation`` (apart from the image
metric of the same family): Bhatt, Weller and Moura, IJCAI 2020, https://arxiv.org/abs/2005.00631.

Definition. For row x with target t and attributions a, draw n random subsets S_1..S_n of
``subset_size`` features (seeded by the row) and, for each, a baseline z_s: a background row drawn
by the same seed (``baseline = "background"``) or the background mean (``baseline = "mean"``).
The score is the Pearson correlation over the n subsets between sum_{i in S} a_i and
f_t(x) - f_t(x with x_S replaced by z_S). Higher is better; NaN where either side is constant
(e.g. all-equal attributions). With the mean baseline, exact interventional Shapley values of a
linear output score exactly 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark.tabular import row_seeds
from benchmark.tabular.metrics import TabularMetric, register_metric, target_outputs


@register_metric("feature_faithfulness_correlation", tags=("faithfulness",))
@dataclass
class FaithfulnessCorrelation(TabularMetric):
    """Pearson correlation of subset attribution sums with the output drop when the subset goes."""

    subsets: int = 50
    subset_size: int = 4
    baseline: str = "background"  # or "mean"
    seed: int = 0
    higher_is_better = {"faithfulness_correlation": True}
    fast_params = {"subsets": 20, "subset_size": 2}

    def cost(self, n_features: int) -> int:
        return self.subsets + 1

    def score(self, *, model, rows, targets, attributions, reference):
        if self.baseline not in ("background", "mean"):
            raise ValueError(f"baseline must be 'background' or 'mean', not {self.baseline!r}")
        b, f = rows.shape
        size = min(self.subset_size, f)
        background = model.background
        masks = np.zeros((b, self.subsets, f), dtype=bool)
        baselines = np.empty((b, self.subsets, f))
        for r, s in enumerate(row_seeds(rows, self.seed, "faithfulness")):
            rng = np.random.default_rng(s)
            for j in range(self.subsets):
                masks[r, j, rng.choice(f, size=size, replace=False)] = True
            baselines[r] = (
                background[rng.integers(0, len(background), size=self.subsets)]
                if self.baseline == "background"
                else background.mean(0)
            )
        removed = np.where(masks, baselines, rows[:, None, :])
        stacked = np.concatenate([rows[:, None, :], removed], axis=1)  # [B, 1+n, F]
        out = target_outputs(model, stacked, targets)
        drops = out[:, :1] - out[:, 1:]
        sums = (masks * attributions[:, None, :]).sum(-1)
        return {"faithfulness_correlation": _pearson(sums, drops)}


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    denominator = np.sqrt((a**2).sum(1) * (b**2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 1e-300, (a * b).sum(1) / denominator, np.nan)
