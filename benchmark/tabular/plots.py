"""The seed study's plots for any tabular explainer: a beeswarm (each row's attribution of each
feature, coloured by the feature's value) and a summary bar chart (mean |attribution| per
feature), drawn with shap's own ``summary_plot`` (Lundberg and Lee 2017) into PNG files.

``plot_attributions(out_dir, "random_forest", "shap_tree_interventional", rows, attributions,
feature_names, target_name)`` writes ``<model>--<explainer>--<target>--beeswarm.png`` and
``...--summary.png`` and returns their paths. The beeswarm's vertical jitter is seeded.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def plot_attributions(
    out_dir: str | Path,
    model_name: str,
    explainer_name: str,
    rows: np.ndarray,
    attributions: np.ndarray,
    feature_names: list[str] | tuple[str, ...],
    target_name: str,
    max_display: int = 12,
    seed: int = 0,
) -> list[Path]:
    """The beeswarm and summary plots of one (model, explainer, explained class); see the module."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{_safe(model_name)}--{_safe(explainer_name)}--{_safe(target_name)}"
    title = f"{explainer_name} on {model_name}: {target_name} ({len(rows)} rows)"
    paths = []
    for kind, plot_type in (("beeswarm", "dot"), ("summary", "bar")):
        plt.figure()
        shap.summary_plot(
            attributions,
            rows,
            feature_names=list(feature_names),
            plot_type=plot_type,
            max_display=max_display,
            show=False,
            rng=np.random.default_rng(seed),
        )
        plt.title(title, fontsize=9)
        path = out_dir / f"{stem}--{kind}.png"
        plt.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
        plt.close("all")
        paths.append(path)
    return paths


__all__ = ["plot_attributions"]
