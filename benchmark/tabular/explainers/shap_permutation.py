"""Permutation SHAP (Strumbelj and Kononenko, KAIS 2014, https://doi.org/10.1007/s10115-013-0679-x;
shap's antithetic version): Shapley values as the mean marginal contribution over sampled feature
orders, walked forward and backward, features outside a prefix taken from the background rows
(``shap.maskers.Independent``). Efficiency holds exactly for every sample of orders."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark.tabular import row_seeds
from benchmark.tabular.explainers import (
    TabularExplainer,
    numpy_global_seed,
    register_explainer,
    target_function,
)


@register_explainer("shap_permutation", tags=("shap", "model-agnostic"), requires=("shap",))
@dataclass
class ShapPermutation(TabularExplainer):
    """``shap.PermutationExplainer`` with ``permutations`` antithetic orders per row, seeded per row."""

    permutations: int = 10
    background_size: int = 50
    seed: int = 0
    fast_params = {"permutations": 2, "background_size": 10}

    def _max_evals(self, n_features: int) -> int:
        return self.permutations * (2 * n_features + 1)

    def cost(self, n_features: int) -> int:
        return self._max_evals(n_features) * self.background_size

    def attribute(self, model, rows, targets):
        import shap

        masker = shap.maskers.Independent(
            model.background[: self.background_size], max_samples=self.background_size
        )
        out = np.empty_like(rows)
        for i, (row, target) in enumerate(zip(rows, targets, strict=True)):
            seed = row_seeds(row[None], self.seed, int(target))[0] % 2**32
            with numpy_global_seed(seed):  # shap seeds numpy's global RNG with it
                explainer = shap.PermutationExplainer(
                    target_function(model, int(target)), masker, seed=seed
                )
                result = explainer(row[None], max_evals=self._max_evals(len(row)), silent=True)
            out[i] = np.asarray(result.values).reshape(-1)
        return out
