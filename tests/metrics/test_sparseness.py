from __future__ import annotations

import numpy as np
import pytest
import torch

from metrics import create_metric


def _gini(saliency, **params):
    images = torch.zeros(len(saliency), 3, *saliency.shape[-2:])
    metric = create_metric("sparseness", **params)
    return metric(model=None, images=images, targets=torch.zeros(len(saliency)), saliency=saliency)[
        "gini"
    ]


def test_closed_forms():
    one_hot = torch.zeros(1, 4, 5)
    one_hot[0, 2, 3] = -7.0  # absolute: the sign does not matter
    assert _gini(one_hot).item() == pytest.approx(1 - 1 / 20)
    assert _gini(torch.full((1, 4, 5), 3.0)).item() == pytest.approx(0.0, abs=1e-7)
    assert _gini(torch.zeros(1, 4, 5)).item() == 0.0  # no mass: like a constant map
    # two values 1 and 3 on 2 pixels: (-1 * 1 + 1 * 3) / (2 * 4) = 0.25
    assert _gini(torch.tensor([[[1.0, 3.0]]])).item() == pytest.approx(0.25)


def test_agrees_with_quantus():
    quantus = pytest.importorskip("quantus")
    g = torch.Generator().manual_seed(0)
    saliency = torch.randn(4, 12, 12, generator=g)
    saliency[1] = saliency[1].clamp(min=0)  # a ReLU'd map with ties at 0
    ours = _gini(saliency).numpy()
    theirs = quantus.Sparseness(disable_warnings=True)(
        model=None,
        x_batch=np.zeros((4, 3, 12, 12), np.float32),
        y_batch=np.zeros(4, int),
        a_batch=saliency[:, None].numpy().copy(),
    )
    # Quantus adds 1e-7 to the max-normalised |S| before the Gini index
    np.testing.assert_allclose(ours, np.asarray(theirs), rtol=0, atol=1e-6)
