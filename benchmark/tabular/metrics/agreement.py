"""Agreement between two explainers' attributions of the same row: OpenXAI's feature, rank, sign
and signed-rank agreement at k (Krishna et al., "The Disagreement Problem in Explainable Machine
Learning", 2022, https://arxiv.org/abs/2202.01602; Agarwal et al., OpenXAI, NeurIPS 2022), and the
rank correlation over all features.

Definition. Let T_a = (a_(1), ..., a_(k)) be the k features of largest |a|, in order (ties broken by
a permutation seeded by the row), likewise T_b for the reference attributions b.
feature_agreement = |set(T_a) & set(T_b)| / k;
rank_agreement = |{r <= k : T_a[r] = T_b[r]}| / k;
sign_agreement = |{i in set(T_a) & set(T_b) : sign(a_i) = sign(b_i)}| / k;
signed_rank_agreement = |{r <= k : T_a[r] = T_b[r] and sign(a_i) = sign(b_i) for i = T_a[r]}| / k;
rank_correlation = Spearman's correlation of |a| and |b| over all F features (average ranks for
ties; NaN where either is constant). All lie in [0, 1] ([-1, 1] for the correlation); higher means
closer agreement with the reference, not better explanations: the reference is a choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

from benchmark.tabular import rank_features
from benchmark.tabular.metrics import TabularMetric, register_metric


@register_metric("agreement", tags=("agreement",))
@dataclass
class Agreement(TabularMetric):
    """Top-k feature, rank, sign and signed-rank agreement, and rank correlation, with a reference."""

    k: int = 5
    reference: str = "shap_tree_interventional"  # the explainer the runner compares against
    seed: int = 0
    needs_reference = True
    higher_is_better = {
        "feature_agreement": True,
        "rank_agreement": True,
        "sign_agreement": True,
        "signed_rank_agreement": True,
        "rank_correlation": True,
    }

    def cost(self, n_features: int) -> int:
        return 0

    def score(self, *, model, rows, targets, attributions, reference):
        k = min(self.k, rows.shape[1])
        top_a = rank_features(np.abs(attributions), rows, self.seed)[:, :k]
        top_b = rank_features(np.abs(reference), rows, self.seed)[:, :k]
        sign_a, sign_b = np.sign(attributions), np.sign(reference)
        out = {name: np.empty(len(rows)) for name in self.higher_is_better}
        for r in range(len(rows)):
            common = np.intersect1d(top_a[r], top_b[r])
            same_rank = top_a[r] == top_b[r]
            same_sign = sign_a[r] == sign_b[r]
            out["feature_agreement"][r] = len(common) / k
            out["rank_agreement"][r] = same_rank.sum() / k
            out["sign_agreement"][r] = same_sign[common].sum() / k
            out["signed_rank_agreement"][r] = (same_rank & same_sign[top_a[r]]).sum() / k
            a, b = np.abs(attributions[r]), np.abs(reference[r])
            constant = np.ptp(a) == 0 or np.ptp(b) == 0
            out["rank_correlation"][r] = np.nan if constant else spearmanr(a, b).statistic
        return out
