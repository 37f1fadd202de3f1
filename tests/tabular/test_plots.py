"""The seed study's beeswarm and summary plots, written as PNG files."""

from __future__ import annotations

import numpy as np

from benchmark.tabular.plots import plot_attributions


def test_beeswarm_and_summary_are_written(tmp_path):
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(30, 4))
    attributions = rows * np.array([1.0, -0.5, 0.1, 0.0])
    paths = plot_attributions(
        tmp_path,
        "random_forest",
        "shap_kernel",
        rows,
        attributions,
        ["a", "b", "c", "d"],
        "suspect",
    )
    assert [p.name for p in paths] == [
        "random_forest--shap_kernel--suspect--beeswarm.png",
        "random_forest--shap_kernel--suspect--summary.png",
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
