"""SHAP's TreeExplainer (Lundberg et al., Nature Machine Intelligence 2020,
https://doi.org/10.1038/s42256-019-0138-9): exact Shapley values of a tree ensemble.

``shap_tree_interventional`` takes the value of a coalition S as E_b[f(x_S, b_rest)] over the
background rows b (the interventional / independent definition), on the probability scale.
``shap_tree_path`` ("tree_path_dependent") conditions on S through the trees' own training cover
and needs no background; it explains the raw tree output, which is the probability only for
averaging forests (random forests, single trees) and regressors, so boosting classifiers get n/a.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark.tabular.explainers import TabularExplainer, cached, register_explainer

_RAW_IS_PROBABILITY = ("RandomForestClassifier", "ExtraTreesClassifier", "DecisionTreeClassifier")


def _pick(values, targets: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim == 2:  # one output (a regressor): only target 0 exists
        if (targets != 0).any():
            raise ValueError("a single-output model has only target 0")
        return values
    return values[np.arange(len(targets)), :, targets]


class _Tree(TabularExplainer):
    exact = True

    def _build(self, model):
        raise NotImplementedError

    def _explainer(self, model):
        return cached(
            model, (self.name, tuple(sorted(self.params().items()))), lambda: self._build(model)
        )

    def supports(self, model):
        if model.estimator is None or "tree" not in model.tags:
            return "not a tree ensemble"
        try:
            self._explainer(model)
        except Exception as e:  # shap's InvalidModelError and friends: say what shap said
            return f"shap's TreeExplainer refuses it ({e})"
        return None

    def attribute(self, model, rows, targets):
        # shap computes each row on its own: batch-independent without a loop.
        return _pick(self._explainer(model).shap_values(rows, check_additivity=False), targets)


@register_explainer("shap_tree_interventional", tags=("shap", "tree", "exact"), requires=("shap",))
@dataclass
class ShapTreeInterventional(_Tree):
    """Interventional TreeExplainer against the model's background (first ``background_size`` rows)."""

    background_size: int = 100

    def cost(self, n_features: int) -> int:
        return 0  # reads the trees; never calls the model

    def _build(self, model):
        import shap

        output = "probability" if hasattr(model.estimator, "predict_proba") else "raw"
        return shap.TreeExplainer(
            model.estimator,
            data=model.background[: self.background_size],
            feature_perturbation="interventional",
            model_output=output,
        )


@register_explainer("shap_tree_path", tags=("shap", "tree", "exact"), requires=("shap",))
@dataclass
class ShapTreePath(_Tree):
    """Path-dependent TreeExplainer (no background: the trees' training cover)."""

    def cost(self, n_features: int) -> int:
        return 0

    def supports(self, model):
        estimator = getattr(model, "estimator", None)
        if estimator is None or "tree" not in model.tags:
            return "not a tree ensemble"
        if (
            hasattr(estimator, "predict_proba")
            and type(estimator).__name__ not in _RAW_IS_PROBABILITY
        ):
            return "path-dependent TreeExplainer explains its raw margin (log-odds), not the probability"
        return super().supports(model)

    def _build(self, model):
        import shap

        return shap.TreeExplainer(model.estimator, feature_perturbation="tree_path_dependent")
