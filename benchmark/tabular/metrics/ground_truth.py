"""Ground-truth recovery on models whose Shapley values are known in closed form (the synthetic
linear model of :mod:`benchmark.tabular.synthetic`; OpenXAI's synthetic-data ground-truth metrics,
Agarwal et al., NeurIPS 2022, https://arxiv.org/abs/2206.11104).

Definition. Let g be the exact interventional Shapley values of row x for target t against the
model's background (for a linear output, g_i = w_ti (x_i - mean_B x_i)). ``relative_error`` =
sum_i |a_i - g_i| / sum_i |g_i| (lower is better; 0 for exact attributions, NaN where g = 0);
``truth_feature_agreement`` and ``truth_sign_agreement`` are the agreement metrics' FA@k and SA@k
with g as the reference (higher is better). Applies only to models that expose ``shapley_against``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark.tabular.metrics import TabularMetric, register_metric
from benchmark.tabular.metrics.agreement import Agreement


@register_metric("ground_truth_recovery", tags=("ground-truth",))
@dataclass
class GroundTruthRecovery(TabularMetric):
    """Distance and top-k agreement with closed-form Shapley values."""

    k: int = 3
    seed: int = 0
    higher_is_better = {
        "relative_error": False,
        "truth_feature_agreement": True,
        "truth_sign_agreement": True,
    }

    def supports(self, model):
        if not hasattr(model, "shapley_against"):
            return "the model's true attributions are unknown (only synthetic models have them)"
        return None

    def cost(self, n_features: int) -> int:
        return 0

    def score(self, *, model, rows, targets, attributions, reference):
        reason = self.supports(model)
        if reason:
            raise ValueError(f"{self.name}: {reason}")
        truth = model.shapley_against(rows, targets, model.background)
        scale = np.abs(truth).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            error = np.where(scale > 0, np.abs(attributions - truth).sum(1) / scale, np.nan)
        agree = Agreement(k=self.k, seed=self.seed)(
            model=model, rows=rows, targets=targets, attributions=attributions, reference=truth
        )
        return {
            "relative_error": error,
            "truth_feature_agreement": agree["feature_agreement"],
            "truth_sign_agreement": agree["sign_agreement"],
        }
