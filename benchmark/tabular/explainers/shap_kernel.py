"""Kernel SHAP (Lundberg and Lee, NeurIPS 2017, https://arxiv.org/abs/1705.07874): a weighted
linear regression over sampled coalitions with the Shapley kernel, features outside a coalition
drawn from the background (the interventional value function). Wraps ``shap.KernelExplainer``."""

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


@register_explainer("shap_kernel", tags=("shap", "model-agnostic"), requires=("shap",))
@dataclass
class ShapKernel(TabularExplainer):
    """KernelExplainer, one row at a time, no L1 feature selection; seeded per row."""

    nsamples: int = 512  # coalitions per row (all 2^F - 2 when that is fewer: exact)
    background_size: int = 50
    seed: int = 0
    fast_params = {"nsamples": 64, "background_size": 10}

    def cost(self, n_features: int) -> int:
        return min(self.nsamples, 2**n_features - 2) * self.background_size

    def attribute(self, model, rows, targets):
        import shap

        background = model.background[: self.background_size]
        out = np.empty_like(rows)
        for i, (row, target) in enumerate(zip(rows, targets, strict=True)):
            explainer = shap.KernelExplainer(target_function(model, int(target)), background)
            with numpy_global_seed(row_seeds(row[None], self.seed, int(target))[0]):
                values = explainer.shap_values(
                    row[None], nsamples=self.nsamples, l1_reg=False, silent=True
                )
            out[i] = np.asarray(values).reshape(-1)
        return out
