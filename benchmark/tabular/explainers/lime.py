"""LIME for tables (Ribeiro et al., KDD 2016, https://arxiv.org/abs/1602.04938): a weighted
ridge regression of the target output on perturbations of the row, with ``lime``'s
``LimeTabularExplainer`` (regression mode on the target's output, quartile discretisation as in
lime's defaults, the background as its training data, every feature kept)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark.tabular import row_seeds
from benchmark.tabular.explainers import TabularExplainer, register_explainer, target_function


@register_explainer("lime", tags=("lime", "model-agnostic"), requires=("lime",))
@dataclass
class LimeTabular(TabularExplainer):
    """LimeTabularExplainer, seeded per row; attributions are the surrogate's coefficients."""

    num_samples: int = 1000
    discretize_continuous: bool = True
    background_size: int = 100
    seed: int = 0
    fast_params = {"num_samples": 100, "background_size": 20}

    def cost(self, n_features: int) -> int:
        return self.num_samples

    def attribute(self, model, rows, targets):
        from lime.lime_tabular import LimeTabularExplainer

        background = model.background[: self.background_size]
        out = np.zeros_like(rows)
        for i, (row, target) in enumerate(zip(rows, targets, strict=True)):
            explainer = LimeTabularExplainer(
                background,
                mode="regression",
                discretize_continuous=self.discretize_continuous,
                feature_selection="none",
                random_state=row_seeds(row[None], self.seed, int(target))[0] % 2**32,
            )
            explanation = explainer.explain_instance(
                row,
                target_function(model, int(target)),
                num_features=len(row),
                num_samples=self.num_samples,
            )
            # Regression mode: label 1 holds the coefficients (label 0 their negation).
            for feature, weight in explanation.as_map()[1]:
                out[i, feature] = weight
        return out
