from __future__ import annotations

import numpy as np
import pytest
import torch

from metrics import create_metric


def _mass(saliency, masks, **params):
    images = torch.zeros(len(saliency), 3, *masks.shape[-2:])
    metric = create_metric("relevance_mass_accuracy", **params)
    return metric(
        model=None,
        images=images,
        targets=torch.zeros(len(saliency)),
        saliency=saliency,
        masks=masks,
    )["mass"]


def _masks():
    masks = torch.zeros(1, 4, 4, dtype=torch.bool)
    masks[0, 1:3, 1:3] = True
    return masks


def test_closed_forms():
    masks = _masks()
    inside = torch.where(masks, 2.0, 0.0)
    assert _mass(inside, masks).item() == 1.0  # a map inside the mask
    assert _mass(torch.ones(1, 4, 4), masks).item() == pytest.approx(4 / 16)
    assert _mass(torch.zeros(1, 4, 4), masks).item() == 0.0  # no mass: localises nothing
    signed = inside.clone()
    signed[0, 0, 0] = -1.0  # negative relevance outside the mask
    assert _mass(signed, masks).item() == 1.0  # positive only: ignored
    assert _mass(signed, masks, relevance="signed").item() == pytest.approx(8 / 7)  # leaves [0, 1]
    assert _mass(signed, masks, relevance="abs").item() == pytest.approx(8 / 9)
    with pytest.raises(ValueError, match="unknown relevance"):
        create_metric("relevance_mass_accuracy", relevance="clipped")


def test_equals_energy_pointing_game_over_100():
    g = torch.Generator().manual_seed(0)
    saliency, masks = torch.randn(3, 8, 8, generator=g), torch.rand(3, 8, 8, generator=g) > 0.6
    energy = create_metric("energy_pointing_game")(
        model=None,
        images=torch.zeros(3, 3, 8, 8),
        targets=torch.zeros(3),
        saliency=saliency,
        masks=masks,
    )["energy"]
    torch.testing.assert_close(_mass(saliency, masks), energy / 100)


def _quantus(saliency, masks):
    quantus = pytest.importorskip("quantus")
    n = len(saliency)
    return np.asarray(
        quantus.RelevanceMassAccuracy(disable_warnings=True)(
            model=None,
            x_batch=np.zeros((n, 3, *masks.shape[-2:]), np.float32),
            y_batch=np.zeros(n, int),
            a_batch=saliency[:, None].numpy().copy(),
            s_batch=masks[:, None].numpy().astype(np.float32),
        )
    )


def test_agrees_with_quantus_signed_and_on_nonnegative_maps():
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(4, 12, 12, generator=g) > 0.5
    signed = torch.randn(4, 12, 12, generator=g) + 0.5  # positive sums, some negative values
    theirs = _quantus(signed, masks)
    np.testing.assert_allclose(_mass(signed, masks, relevance="signed").numpy(), theirs, atol=1e-5)
    # the default (positive only) differs from Quantus's signed score on such maps
    assert not np.allclose(_mass(signed, masks).numpy(), theirs, atol=1e-3)
    nonnegative = signed.clamp(min=0)
    np.testing.assert_allclose(
        _mass(nonnegative, masks).numpy(), _quantus(nonnegative, masks), atol=1e-5
    )
