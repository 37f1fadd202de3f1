from __future__ import annotations

import numpy as np
import pytest
import torch

from metrics import create_metric


def _rank(saliency, masks, **params):
    images = torch.arange(len(saliency) * 3 * masks[0].numel(), dtype=torch.float32)
    images = images.view(len(saliency), 3, *masks.shape[-2:])
    metric = create_metric("relevance_rank_accuracy", **params)
    return metric(
        model=None,
        images=images,
        targets=torch.zeros(len(saliency)),
        saliency=saliency,
        masks=masks,
    )["rank"]


def test_closed_forms():
    masks = torch.zeros(1, 4, 4, dtype=torch.bool)
    masks[0, 1:3, 1:3] = True  # K = 4
    assert _rank(torch.where(masks, 1.0, 0.0), masks).item() == 1.0  # a map inside the mask
    assert _rank(torch.where(masks, 0.0, 1.0), masks).item() == 0.0
    saliency = torch.where(masks, 1.0, 0.0)
    saliency[0, 1, 1] = -5.0  # one mask pixel ranked last: 3 of the top 4 are inside...
    saliency[0, 0, 0] = 0.5  # ...the fourth is this one, outside
    assert _rank(saliency, masks).item() == 0.75
    # a constant map: exactly K pixels, chosen by the tie-break, so a multiple of 1/K that moves
    # with the seed
    values = {_rank(torch.ones(1, 4, 4), masks, seed=s).item() for s in range(20)}
    assert len(values) > 1 and all((4 * v).is_integer() for v in values)


def test_agrees_with_quantus_on_maps_without_ties():
    quantus = pytest.importorskip("quantus")
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(4, 12, 12, generator=g) > 0.6
    saliency = torch.randn(4, 12, 12, generator=g)
    theirs = quantus.RelevanceRankAccuracy(disable_warnings=True)(
        model=None,
        x_batch=np.zeros((4, 3, 12, 12), np.float32),
        y_batch=np.zeros(4, int),
        a_batch=saliency[:, None].numpy().copy(),
        s_batch=masks[:, None].numpy().astype(np.float32),
    )
    np.testing.assert_allclose(_rank(saliency, masks).numpy(), np.asarray(theirs), atol=1e-6)
