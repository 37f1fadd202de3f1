from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from metrics import create_metric


def _entropy(saliency, **params):
    images = torch.zeros(len(saliency), 3, *saliency.shape[-2:])
    metric = create_metric("complexity", **params)
    return metric(model=None, images=images, targets=torch.zeros(len(saliency)), saliency=saliency)[
        "entropy"
    ]


def test_closed_forms():
    assert _entropy(torch.full((1, 4, 5), 2.0)).item() == pytest.approx(math.log(20))
    assert _entropy(torch.full((1, 4, 5), 2.0), normalised=True).item() == pytest.approx(1.0)
    assert _entropy(torch.zeros(1, 4, 5)).item() == pytest.approx(math.log(20))  # no mass: uniform
    one_hot = torch.zeros(1, 4, 5)
    one_hot[0, 1, 1] = -3.0
    assert _entropy(one_hot).item() == 0.0
    # |S| = (1, 1, 2): shares 1/4, 1/4, 1/2 -> 1.5 ln 2
    assert _entropy(torch.tensor([[[1.0, -1.0, 2.0]]])).item() == pytest.approx(1.5 * math.log(2))


def test_agrees_with_quantus():
    quantus = pytest.importorskip("quantus")
    g = torch.Generator().manual_seed(0)
    saliency = torch.randn(4, 12, 12, generator=g)
    saliency[1] = saliency[1].clamp(min=0)
    ours = _entropy(saliency).numpy()
    theirs = quantus.Complexity(disable_warnings=True)(
        model=None,
        x_batch=np.zeros((4, 3, 12, 12), np.float32),
        y_batch=np.zeros(4, int),
        a_batch=saliency[:, None].numpy().copy(),
    )
    np.testing.assert_allclose(ours, np.asarray(theirs), rtol=1e-5, atol=1e-6)  # Quantus: float32
