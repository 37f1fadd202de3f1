"""Every registered tabular explainer x every tiny model: shape, dtype, finite, deterministic,
batch-independent, the target matters, and only declared refusals."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.tabular.explainers import NotApplicable, create_explainer, registry

EXPLAINERS = registry.names()


def test_the_registry_discovers_every_module():
    assert set(EXPLAINERS) >= {
        "random",
        "lime",
        "shap_kernel",
        "shap_permutation",
        "shap_tree_interventional",
        "shap_tree_path",
    }
    with pytest.raises(KeyError, match="Did you mean: shap_kernel"):
        registry.entry("shap_kernal")


@pytest.mark.parametrize("name", EXPLAINERS)
def test_contract(name, tiny_model):
    explainer = create_explainer(name, **registry.get(name).fast_params)
    rows = tiny_model.background[:3] + 0.25
    targets = np.array([0, 1, 2])
    reason = explainer.supports(tiny_model)
    if reason:  # only tree methods may refuse, and only models they cannot read
        assert "tree" in registry.entry(name).tags, reason
        assert tiny_model.name in ("mlp", "linear", "gradient_boosting"), reason
        with pytest.raises(NotApplicable, match=reason[:20]):
            explainer.explain(tiny_model, rows, targets)
        return
    out = explainer.explain(tiny_model, rows, targets)
    assert out.shape == rows.shape and out.dtype == np.float64 and np.isfinite(out).all()
    assert np.array_equal(out, explainer.explain(tiny_model, rows, targets))  # deterministic
    alone = np.concatenate(
        [explainer.explain(tiny_model, rows[i : i + 1], targets[i : i + 1]) for i in range(3)]
    )
    assert np.allclose(out, alone, rtol=0, atol=1e-12)  # batch-independent
    other = explainer.explain(tiny_model, rows, (targets + 1) % 3)
    assert not np.allclose(out, other)  # the target matters
    assert explainer.cost(rows.shape[1]) >= 0
    with pytest.raises(ValueError, match="rows must be"):
        explainer.explain(tiny_model, rows[0], targets[:1])
