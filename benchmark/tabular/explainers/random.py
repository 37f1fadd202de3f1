"""Random baseline: i.i.d. standard normal attributions (OpenXAI's random explainer; Agarwal et
al., NeurIPS 2022, https://arxiv.org/abs/2206.11104), seeded by the row, its target and ``seed``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark.tabular import row_seeds
from benchmark.tabular.explainers import TabularExplainer, register_explainer


@register_explainer("random", tags=("baseline",))
@dataclass
class Random(TabularExplainer):
    """Standard normal attributions, no model call: the floor every explainer must beat."""

    seed: int = 0

    def cost(self, n_features: int) -> int:
        return 0

    def attribute(self, model, rows, targets):
        seeds = [
            row_seeds(r[None], self.seed, int(t))[0] for r, t in zip(rows, targets, strict=True)
        ]
        return np.stack([np.random.default_rng(s).standard_normal(rows.shape[1]) for s in seeds])
